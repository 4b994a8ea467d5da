"""Typed stack configuration: one schema, read from ``pulumi.Config`` values, validated up front.

No Pulumi import here: ``infra/`` hands in the raw values so that tests and tools can load a
``Pulumi.<stack>.yaml`` without running a program.
"""

from .errors import ConfigError, ConfigProblem
from .load import PROJECT, load_stack_config, load_stack_file
from .schema import (
    ArtifactAccessMode,
    ArtifactsConfig,
    ClusterConfig,
    DatabaseConfig,
    ExtraPrincipal,
    NetworkConfig,
    ServerConfig,
    ServiceAccountRef,
    StackConfig,
    TrainingConfig,
)

__all__ = [
    "PROJECT",
    "ArtifactAccessMode",
    "ArtifactsConfig",
    "ClusterConfig",
    "ConfigError",
    "ConfigProblem",
    "DatabaseConfig",
    "ExtraPrincipal",
    "NetworkConfig",
    "ServerConfig",
    "ServiceAccountRef",
    "StackConfig",
    "TrainingConfig",
    "load_stack_config",
    "load_stack_file",
]
