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

from dataclasses import dataclass

from rendering.mlflow_server import ArtifactAccessMode
from rendering.versions import mlflow_version


def client_packages(access_mode: ArtifactAccessMode) -> tuple[str, ...]:
    packages = (f"mlflow=={mlflow_version()}",)
    return (*packages, "boto3") if access_mode == "direct" else packages


def client_install_command(access_mode: ArtifactAccessMode) -> str:
    """The pip command line for a training environment (plus the script's own libraries)."""
    return "pip install " + " ".join(client_packages(access_mode))


@dataclass(frozen=True)
class ClientRetryBudget:
    """How long a training job's MLflow client keeps trying before it fails the job: the values of
    the ``mlflow-client`` ConfigMap each training namespace gets (``components/tracking_server/training.py``)
    and the budget ``python -m mlflowbench.jobs`` gives its simulated jobs.

    ``max_retries`` is MLflow's own default (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 in MLflow
    3.17.2's ``mlflow/environment_variables.py``): with its backoff factor 2 and urllib3's 120 s cap,
    about 4 minutes of sleeping, which outlasts a replica restart or an admission-limit burst.
    ``timeout_s`` is per attempt (``MLFLOW_HTTP_REQUEST_TIMEOUT``, MLflow's default 120 s): 600 s
    lets a large ``log_batch`` or artifact upload finish on a busy server rather than be retried.
    ``backoff_jitter_s`` (``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``, MLflow's default 1.0) is the
    random extra urllib3 adds to each backoff (``Retry.get_backoff_time``). With MLflow's 1 s, jobs
    refused together by the admission limit retry together, as ~1 s waves the server can only
    partly serve: `make bench-jobs`' burst of 500 jobs lost 5 to the retry budget with 1 s
    (docs/bench/jobs.md). 10 s spreads each wave over what two replicas serve in that time, and
    adds at most 60 s to the ~4 minutes of sleeping.
    """

    max_retries: int = 7
    timeout_s: int = 600
    backoff_jitter_s: float = 10.0

    def env(self) -> dict[str, str]:
        return {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": f"{self.backoff_jitter_s:g}",
        }


TRAINING_CLIENT_RETRY = ClientRetryBudget()
