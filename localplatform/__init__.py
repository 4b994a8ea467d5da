"""The local target: the whole MLflow platform on one machine, from the same rendered configuration.

Public API: :class:`LocalPlatform`, :class:`PlatformOptions`, :class:`ComponentHandle`,
:class:`PlatformInfo`, :class:`PlatformError`. CLI: ``python -m localplatform up|down|status``.
"""

from .errors import PlatformError
from .options import AuthMode, PlatformOptions, PoolerMode
from .platform import ComponentHandle, LocalPlatform, PlatformInfo

__all__ = [
    "AuthMode",
    "ComponentHandle",
    "LocalPlatform",
    "PlatformError",
    "PlatformInfo",
    "PlatformOptions",
    "PoolerMode",
]
