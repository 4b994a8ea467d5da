"""The local target: the whole MLflow platform on one machine, from the same rendered configuration.

Public API: :class:`LocalPlatform`, :class:`PlatformOptions`, :class:`ComponentHandle`,
:class:`PlatformInfo`, :class:`PlatformError`. CLI: ``python -m localplatform up|down|status``.
"""

from .errors import PlatformError
from .handles import ComponentHandle, PlatformInfo
from .options import AuthMode, PlatformOptions, PoolerMode
from .platform import LocalPlatform

__all__ = [
    "AuthMode",
    "ComponentHandle",
    "LocalPlatform",
    "PlatformError",
    "PlatformInfo",
    "PlatformOptions",
    "PoolerMode",
]
