"""``python -m mlflowbench``: see :mod:`mlflowbench.cli`."""

from mlflowbench.cli import main

raise SystemExit(main())
