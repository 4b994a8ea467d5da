#!/usr/bin/env python3
"""Create team experiments, users and permissions from teams.yaml (idempotent).

Run from anywhere as `python scripts/bootstrap_teams.py --help`; the implementation is
`mlflowops/bootstrap.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.bootstrap import main

if __name__ == "__main__":
    sys.exit(main())
