"""Memory of RDS instance classes, so the parameter group can be tuned without an AWS call.

A table instead of the ``DescribeDBInstanceClasses`` API keeps ``pulumi preview`` offline-safe
and the rendering pure. Unknown classes are an error that points at ``database.memoryGib``.
"""

from __future__ import annotations

from .units import GIB

# GiB of memory at size ``large`` for each family; each size step doubles it.
_FAMILY_MEMORY_AT_LARGE_GIB: dict[str, float] = {
    # burstable: micro=1, small=2, medium=4, large=8, xlarge=16, 2xlarge=32
    "t3": 8,
    "t4g": 8,
    # general purpose: 4 GiB per vCPU
    "m5": 8,
    "m5d": 8,
    "m6g": 8,
    "m6gd": 8,
    "m6i": 8,
    "m6id": 8,
    "m7g": 8,
    "m7i": 8,
    "m8g": 8,
    # memory optimised: 8 GiB per vCPU
    "r5": 16,
    "r5d": 16,
    "r6g": 16,
    "r6gd": 16,
    "r6i": 16,
    "r6id": 16,
    "r7g": 16,
    "r7i": 16,
    "r8g": 16,
}
_SIZE_FACTOR: dict[str, float] = {
    "micro": 1 / 8,
    "small": 1 / 4,
    "medium": 1 / 2,
    "large": 1,
    "xlarge": 2,
    "2xlarge": 4,
    "4xlarge": 8,
    "8xlarge": 16,
    "12xlarge": 24,
    "16xlarge": 32,
    "24xlarge": 48,
}
_BURSTABLE = {"t3", "t4g"}
_BURSTABLE_SIZES = {"micro", "small", "medium", "large", "xlarge", "2xlarge"}


class UnknownInstanceClassError(ValueError):
    """The instance class is not in our table; the caller names the config key."""


def known_instance_classes() -> list[str]:
    """Every class the table knows, for error messages and docs."""
    classes = []
    for family in _FAMILY_MEMORY_AT_LARGE_GIB:
        sizes = _BURSTABLE_SIZES if family in _BURSTABLE else set(_SIZE_FACTOR) - {"micro", "small", "medium"}
        classes += [f"db.{family}.{size}" for size in sizes]
    return sorted(classes)


def instance_memory_bytes(instance_class: str) -> int:
    """Nominal memory of an RDS DB instance class in bytes.

    Raises UnknownInstanceClassError for classes outside the table (including sizes a family
    does not offer, e.g. ``db.r6g.micro``), instead of guessing a tuning for them.
    """
    parts = instance_class.split(".")
    if len(parts) != 3 or parts[0] != "db":
        raise UnknownInstanceClassError(f"not an RDS instance class: {instance_class!r}")
    _, family, size = parts
    if family not in _FAMILY_MEMORY_AT_LARGE_GIB or instance_class not in known_instance_classes():
        raise UnknownInstanceClassError(f"unknown RDS instance class: {instance_class!r}")
    return int(_FAMILY_MEMORY_AT_LARGE_GIB[family] * _SIZE_FACTOR[size] * GIB)
