"""``pulumi.Output.all`` by name, typed.

Why: ``Output.all(a, b, c).apply(lambda v: f(v[0], v[2]))`` ties each value to its position, and a
reordered or inserted argument silently feeds the wrong value (a password where a host belongs).
``Output.all(**inputs)`` resolves to a dict instead (pulumi ``Output.all``: "dict (if kwargs i.e.
keyworded arguments are supplied)"), but the SDK types it ``Output[list | dict]``; this says which.
"""

from __future__ import annotations

from typing import Any, cast

import pulumi


def all_named(**inputs: pulumi.Input[Any]) -> pulumi.Output[dict[str, Any]]:
    """The inputs, resolved together, by the names they were passed under."""
    return cast(pulumi.Output[dict[str, Any]], pulumi.Output.all(**inputs))
