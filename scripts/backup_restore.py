#!/usr/bin/env python3
"""Back up, restore, or drill (backup, destroy, restore, verify) the local platform.

Run from anywhere as `python scripts/backup_restore.py --help`; the implementation is
`mlflowops/backup_restore.py` with
`localplatform/backup.py` (importable, and tested in-process).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflowops.backup_restore import main

if __name__ == "__main__":
    sys.exit(main())
