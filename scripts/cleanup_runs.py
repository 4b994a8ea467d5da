#!/usr/bin/env python3
"""Delete old runs safely: all pages, top N and registry-backed runs protected; dry run by default.

Run from anywhere as `python scripts/cleanup_runs.py --help`; the implementation is
`mlflowops/cleanup.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.cleanup import main

if __name__ == "__main__":
    sys.exit(main())
