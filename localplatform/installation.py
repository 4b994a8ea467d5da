"""Checks of the MLflow installation the server will run from, before anything starts.

Why up front: the rendered command selects the platform's app (``--app-name``) and the rendered
tracking URI selects the store plugin's scheme; an installation without them would fail only once
every service is up, in the server's log. One entry-point check serves both (a merge had written
it twice, once per plugin).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rendering.mlflow_server import MINIMUM_MLFLOW_VERSION, PLATFORM_APP, PLATFORM_APP_SOURCE
from rendering.tracking_store import STORE_SCHEME, STORE_SOURCE

from .errors import PlatformError
from .options import PlatformOptions


def check_mlflow(python: Path, options: PlatformOptions) -> Path:
    """``python`` has an MLflow this platform can run (the requested version, new enough, with the
    plugins the rendered server selects); otherwise a PlatformError that says what to install."""
    if not python.exists():
        raise PlatformError(f"--mlflow-python {python} does not exist")
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PlatformError(
            f"{python} has no MLflow: install it with `{python} -m pip install 'mlflow[auth]' psycopg2-binary boto3`"
        )
    version = result.stdout.strip()
    if options.mlflow_version and version != options.mlflow_version:
        raise PlatformError(
            f"MLflow {options.mlflow_version} was requested but {python} has {version}: create a "
            f"virtualenv with `pip install 'mlflow[auth]=={options.mlflow_version}' psycopg2-binary boto3` "
            "and pass its interpreter with --mlflow-python"
        )
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MINIMUM_MLFLOW_VERSION:
        minimum = ".".join(map(str, MINIMUM_MLFLOW_VERSION))
        raise PlatformError(f"MLflow {version} is too old for this platform (needs >= {minimum}, no default admin)")
    if options.store == "set-based":
        require_entry_point(python, "mlflow.tracking_store", STORE_SCHEME, "tracking-store plugin", STORE_SOURCE)
    if options.auth == "ours" and options.server == "platform" and options.mlflow_python is None:
        require_entry_point(python, "mlflow.app", PLATFORM_APP, "MLflow app", PLATFORM_APP_SOURCE)
    return python


def require_entry_point(python: str | Path, group: str, name: str, what: str, source: str | Path) -> None:
    """Fail when ``python`` has no entry point ``name`` in ``group``, naming the install command.

    ``source`` is what ``pip install`` takes: a requirement or a path (the in-repo plugins'
    ``PLATFORM_APP_SOURCE``/``STORE_SOURCE`` are ``Path``s).
    """
    probe = f"import importlib.metadata as m; print(any(e.name == {name!r} for e in m.entry_points(group={group!r})))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if result.stdout.strip() != "True":
        raise PlatformError(
            f"{python} lacks the {what} {name!r} the rendered server selects: install it with "
            f"`{python} -m pip install --no-deps {source}` (make setup does)"
        )
