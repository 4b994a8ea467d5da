#!/usr/bin/env python3
"""Promote a model version to candidate, challenger or champion, with gates.

Run from anywhere as `python scripts/promote.py --help`; the implementation is
`mlflowops/promotion.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.promotion import main

if __name__ == "__main__":
    sys.exit(main())
