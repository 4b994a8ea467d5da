#!/usr/bin/env python3
"""Validate a stack file from any directory: ``python <project>/scripts/check_stack_config.py dev``
(or a path to a ``Pulumi.<stack>.yaml``). The same check as ``python -m stackconfig check`` run
from the project root, which needs the project on ``sys.path``; this wrapper puts it there.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackconfig.__main__ import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args if args[:1] == ["check"] else ["check", *args]))
