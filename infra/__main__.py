"""The Pulumi program: read the stack config, wire the components, export what users need.

Wiring only; every decision lives in ``stackconfig`` (validation), ``rendering`` (values)
and ``components`` (resources).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs the program with infra/ as working directory; the project's packages are beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.stack import build_stack

outputs = build_stack()
for output_name, value in outputs.items():
    pulumi.export(output_name, value)
