#!/usr/bin/env python3
"""Compare the challenger's shadow metrics with the champion's; tag the version with the verdict.

Run from anywhere as `python scripts/verify_shadow.py --help`; the implementation is
`mlflowops/shadow.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.shadow import main

if __name__ == "__main__":
    sys.exit(main())
