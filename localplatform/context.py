"""What every step of the local platform is built from: the options, the state layout, the binaries,
the generated secrets, the allocated ports and the two users, plus the local constants (loopback,
bucket, region) that the steps and the platform API share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rendering.ingress import IngressSettings
from rendering.mlflow_server import MLFLOW_BASIC_AUTH_APP, PLATFORM_APP
from rendering.server_side import PlatformSettings
from stackconfig.schema import ArtifactsConfig, ServerConfig

from .binaries import Binaries
from .layout import StateLayout
from .options import PlatformOptions
from .secrets_store import LocalSecrets
from .users import RunAs

LOOPBACK = "127.0.0.1"
PUBLIC_HOST = "localhost"
"""What clients use: resolvable everywhere (an unknown name makes MLflow clients hang in DNS)."""
BUCKET = "mlflow-local-artifacts"
REGION = "us-east-1"
SERVER = ServerConfig()
"""The stack's server defaults (in-flight admission limit, auth cache TTL) apply locally too."""
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_BOOTSTRAP = PROJECT_ROOT / "images" / "tracking-server" / "run_bootstrap.py"
"""The bootstrap/migration runner the EKS migration Job runs from the image."""
LOCAL_INGRESS = IngressSettings(hsts_max_age_s=0)
"""The shared ingress settings; only HSTS is off locally (it would pin every localhost port)."""


@dataclass(frozen=True)
class Context:
    options: PlatformOptions
    layout: StateLayout
    binaries: Binaries
    secrets: LocalSecrets
    ports: dict[str, int]
    me: RunAs
    svc: RunAs
    mlflow_python: Path

    @property
    def svc_user(self) -> str | None:
        """The account to name in a Step (None when it is us)."""
        return None if self.svc.is_current else self.svc.name

    @property
    def artifacts(self) -> ArtifactsConfig:
        return ArtifactsConfig(access_mode=self.options.access_mode)

    @property
    def artifact_root(self) -> str:
        return f"s3://{BUCKET}/{self.artifacts.prefix}"

    @property
    def s3_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        return f"https://{PUBLIC_HOST}:{self.ports['https']}"

    @property
    def python_env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}

    @property
    def platform_settings(self) -> PlatformSettings:
        return PlatformSettings(
            access_mode=self.options.access_mode,
            in_flight_per_worker=self.options.in_flight_per_worker,
            auth_cache_ttl_seconds=SERVER.auth_cache_ttl_seconds,
            basic_auth=self.options.auth != "off",
            tracking_store=self.options.store,
            # The platform app is built against the pinned MLflow's basic-auth tables; MLflow's
            # own app for the stock server and its shipped defaults (comparisons) and for another
            # MLflow installation.
            server_app=(
                MLFLOW_BASIC_AUTH_APP
                if self.options.server == "stock"
                or self.options.auth == "mlflow-defaults"
                or self.options.mlflow_python is not None
                else PLATFORM_APP
            ),
            teams=self.options.teams,
        )


def aws_env(ctx: Context, ca_bundle: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ctx.secrets.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": ctx.secrets.aws_secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CA_BUNDLE": ca_bundle,
    }
