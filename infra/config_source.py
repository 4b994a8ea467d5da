"""Reads our namespace from Pulumi's config and turns validation errors into a clean
preview failure (``pulumi.RunError``: message, no stack trace)."""

from __future__ import annotations

import json

import pulumi
import pulumi.runtime.config as runtime_config

from stackconfig import PROJECT, ConfigError, StackConfig, load_stack_config
from stackconfig.load import SECTIONS


def _namespace_keys() -> set[str]:
    """Every key set under our namespace, including typos we must reject."""
    prefix = f"{PROJECT}:"
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {key[len(prefix) :] for key in everything if key.startswith(prefix)}


def _other_namespaces() -> dict[str, object]:
    """Every key outside our namespace, by full name (``aws:region``): checked by the loader
    like ``stackconfig check`` does (unknown namespaces, the region rule)."""
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {key: value for key, value in everything.items() if not key.startswith(f"{PROJECT}:")}


def read_stack_config() -> StackConfig:
    config = pulumi.Config(PROJECT)
    values: dict[str, object] = {}
    for key in _namespace_keys() | set(SECTIONS):
        raw = config.get(key)
        if raw is None:
            continue
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        return load_stack_config(values, other_namespaces=_other_namespaces())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
