#!/usr/bin/env python3
"""Probe put/get/list/delete under an S3 artifact root, optionally as an assumed IAM role.

Run from anywhere as `python scripts/check_artifact_store.py --help`; the implementation is
`mlflowops/artifact_probe.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.artifact_probe import main

if __name__ == "__main__":
    sys.exit(main())
