"""Parse and validate raw stack config values into :class:`StackConfig`.

Every problem is collected with its fully qualified key (``mlflow-platform:database.instanceClass``),
the value given and what is allowed, and raised together as one :class:`ConfigError`. Keys are
declared in ``stackconfig.schema``; ``stackconfig.sections`` reads each section from the
declarations, ``stackconfig.checks`` holds the rules between sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from . import checks, cluster_access, cluster_addons, sections
from .checks import replicas_for_declared_peak
from .declare import ClusterMode, declared
from .errors import ConfigError, ConfigProblem
from .namespaces import PROJECT, did_you_mean, namespace_problems
from .patterns import TAG_KEY
from .reader import Section
from .schema import StackConfig
from .teams import parse_teams

__all__ = ["PROJECT", "SECTIONS", "load_stack_config", "load_stack_file", "replicas_for_declared_peak"]

SECTIONS = tuple(item.name for item in declared(StackConfig))
"""The top-level keys of our namespace, as declared by :class:`StackConfig`'s fields."""
_NOT_OBJECTS = ("tags", "kubernetes", "teams")


def _tags(raw: object, problems: list[ConfigProblem]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and TAG_KEY.match(k) and isinstance(v, str) and len(v) <= 256 for k, v in raw.items()
    ):
        problems.append(
            ConfigProblem(f"{PROJECT}:tags", raw, "an object of string tag keys (≤128 chars) to string values (≤256)")
        )
        return {}
    return dict(raw)


def load_stack_config(
    values: Mapping[str, object], *, other_namespaces: Mapping[str, object] | None = None
) -> StackConfig:
    """Build the typed config from raw values keyed by section (``database``, ``network``, …).

    ``values`` may also hold keys of other namespaces' style (already stripped); any key of
    our namespace that is not a known section is reported, so a typo cannot silently fall
    back to a default. ``other_namespaces`` are the stack's keys outside ours, by full name
    (``aws:region``): given by ``pulumi preview`` and ``stackconfig check`` alike, they are
    checked by :func:`stackconfig.namespaces.namespace_problems` (unknown namespaces, the
    region rule).
    """
    problems: list[ConfigProblem] = []
    for key in values:
        if key not in SECTIONS:
            hint = did_you_mean(key, SECTIONS)
            problems.append(
                ConfigProblem(f"{PROJECT}:{key}", values[key], f"no such key (known keys: {', '.join(SECTIONS)}){hint}")
            )
    raw = {
        name: Section(name, values.get(name), problems, required=name == "cluster")
        for name in SECTIONS
        if name not in _NOT_OBJECTS
    }
    cluster = sections.cluster(raw["cluster"])
    mode: ClusterMode | None = cluster.mode if raw["cluster"].raw.get("mode") in ("create", "reuse") else None
    config = StackConfig(
        cluster=cluster,
        network=sections.network(raw["network"], mode),
        database=sections.database(raw["database"]),
        artifacts=sections.artifacts(raw["artifacts"]),
        training=sections.training(raw["training"]),
        server=sections.server(raw["server"]),
        rotation=sections.rotation(raw["rotation"]),
        tags=_tags(values.get("tags"), problems),
        monitoring=sections.monitoring(raw["monitoring"]),
        garbage_collection=sections.garbage_collection(raw["garbageCollection"]),
        kubernetes=cluster_access.kubernetes_switch(values.get("kubernetes"), problems),
        kms=sections.kms(raw["kms"]),
        teams=parse_teams(values.get("teams"), problems),
    )
    if mode is not None:
        checks.cluster_mode(config, values, problems)
        cluster_access.check_cluster_access(config, problems)
        cluster_addons.check(config, problems)
    checks.replication(config, problems)
    for section in raw.values():
        section.reject_unknown()
    if other_namespaces is not None:
        problems += namespace_problems(config, other_namespaces)
    if not problems:
        checks.capacity(config, problems)
        cluster_addons.check_node_capacity(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def load_stack_file(path: Path) -> dict[str, object]:
    """Our namespace's values from a ``Pulumi.<stack>.yaml``, keyed by section.

    ``secure:`` values (Pulumi secrets) are returned as the placeholder ``"<secret>"``: the
    schema never holds secrets, so they only matter to tests that feed provider config.
    """
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}
