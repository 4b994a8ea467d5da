"""What a training script's machine installs to use the platform, by artifact access mode.

In ``direct`` mode the MLflow client uploads and downloads artifacts to S3 itself, through
boto3 (``mlflow/store/artifact/s3_artifact_repo.py`` imports it when the first artifact is
logged), and the ``mlflow`` package does not depend on boto3: a client installed with only
``pip install mlflow`` trains, then fails in ``log_model`` with "No module named 'boto3'" and
leaves a FAILED run. In ``proxied`` mode only the server talks to S3. The MLflow version is the
server's pin (``requirements.txt``): a client newer than the server may call APIs it lacks.
One function, used by ``make up``'s output and checked against the README by the tests.
"""

from __future__ import annotations

from rendering.mlflow_server import ArtifactAccessMode
from rendering.versions import mlflow_version


def client_packages(access_mode: ArtifactAccessMode) -> tuple[str, ...]:
    packages = (f"mlflow=={mlflow_version()}",)
    return (*packages, "boto3") if access_mode == "direct" else packages


def client_install_command(access_mode: ArtifactAccessMode) -> str:
    """The pip command line for a training environment (plus the script's own libraries)."""
    return "pip install " + " ".join(client_packages(access_mode))
