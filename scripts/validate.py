#!/usr/bin/env python3
"""Validate a model version's run metrics against thresholds; tag it and set the candidate alias.

Run from anywhere as `python scripts/validate.py --help`; the implementation is
`mlflowops/validation.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.validation import main

if __name__ == "__main__":
    sys.exit(main())
