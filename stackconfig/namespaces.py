"""Config keys outside our namespace, and the rules that tie them to ours.

Pulumi accepts a key in any namespace and hands it to whoever asks for that namespace; a key
nobody asks for is silently ignored. So ``mlflow-platfrom:database`` (a typo of the project
name) would leave the whole section at its defaults without a word. Here every key must be in
our namespace or in one a provider of this program reads (:data:`PROVIDER_NAMESPACES`), and a
misspelled one gets a did-you-mean. Rules that compare our values with a provider's (the
region) live here too, so ``python -m stackconfig check`` and ``pulumi preview`` run them alike
(both go through :func:`stackconfig.load.load_stack_config`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import ConfigProblem

if TYPE_CHECKING:
    from .schema import StackConfig

PROJECT = "mlflow-platform"
"""The project's namespace (``name:`` in Pulumi.yaml); ``stackconfig.load.PROJECT`` is this one."""

PROVIDER_NAMESPACES = ("aws", "kubernetes", "random", "pulumi")
"""Namespaces whose keys are legitimate in our stack files: the providers this program uses
(one per ``pulumi-<name>`` package in requirements/project.in, checked by a test) and Pulumi's
own (``pulumi:tags``, ``pulumi:disable-default-providers``, …)."""


class _Namespace:
    """Shown as the "got" part of a problem: the namespace, never the value (which may be a
    decrypted secret when the program runs)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"namespace {self.namespace!r}" if self.namespace else "no namespace"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` most likely misspells; a case-only difference (``multiAZ`` for
    ``multiAz``) always matches."""
    options = sorted(set(candidates))
    same_case = [c for c in options if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for :func:`closest`, or ``""``."""
    match = closest(name, candidates)
    return f" (did you mean {match!r}?)" if match else ""


def foreign_key_problems(keys: Iterable[str]) -> list[ConfigProblem]:
    """A problem for every full config key (``<namespace>:<name>``) that is neither ours nor a
    provider's, or has no namespace at all (Pulumi cannot parse those)."""
    known = (PROJECT, *PROVIDER_NAMESPACES)
    expected = f"a key in the {PROJECT!r} namespace or a provider's ({', '.join(PROVIDER_NAMESPACES)})"
    problems = []
    for key in keys:
        namespace, sep, name = key.partition(":")
        if not sep:
            problems.append(ConfigProblem(key, _Namespace(""), f"<namespace>:<name>, e.g. '{PROJECT}:{key}'"))
        elif namespace not in known:
            match = closest(namespace, known)
            hint = f" (did you mean '{match}:{name}'?)" if match else ""
            problems.append(ConfigProblem(key, _Namespace(namespace), expected + hint))
    return problems


def region_problems(config: StackConfig, provider_region: object) -> list[ConfigProblem]:
    """The AWS provider's region and ours must agree: the kubeconfig, the S3 endpoint and the
    add-ons use ours, the provider creates everything in its own. Unset: the provider falls back
    to the environment (``AWS_REGION``), which only the program can see."""
    if provider_region is None or provider_region == config.cluster.region:
        return []
    return [
        ConfigProblem(
            f"{PROJECT}:cluster.region",
            config.cluster.region,
            f"the stack's aws:region ({provider_region!r}): set both to the same region",
        )
    ]


def namespace_problems(config: StackConfig, other_namespaces: Mapping[str, object]) -> list[ConfigProblem]:
    """Everything this module checks, for the keys of all other namespaces (full names)."""
    return foreign_key_problems(other_namespaces) + region_problems(config, other_namespaces.get("aws:region"))


def read_other_namespaces(path: Path) -> dict[str, object]:
    """The keys of a ``Pulumi.<stack>.yaml`` outside our namespace, by full name (the
    counterpart of :func:`stackconfig.load.load_stack_file`)."""
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    return {str(key): value for key, value in config.items() if not str(key).startswith(f"{PROJECT}:")}
