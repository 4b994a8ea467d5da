"""The tracking server's Jobs: the database migration before the Deployment, and the admin
password change after it (only when ``rotation.adminPassword`` is raised)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.pod_toolkit import (
    Resources,
    api_object,
    container,
    job_spec,
    pod_spec,
    run_volume,
    scratch_volume,
    secrets_volume,
    stage_secrets_container,
)
from rendering.eks_pod import RUN_DIR
from rendering.names import ADMIN_USERNAME
from stackconfig.schema import ServerConfig

from .common import ADMIN_PASSWORD_LABELS, MIGRATION_LABELS, Rendered
from .network_policies import admin_password_network_policy

BOOTSTRAP_RUNNER = "/opt/mlflow-platform/run_bootstrap.py"
ADMIN_PASSWORD_RUNNER = "/opt/mlflow-platform/apply_admin_password.py"  # noqa: S105 - a path


def migration_job_name(mlflow_version: str, database_password_generation: int = 0) -> str:
    """``mlflow-db-migrate-3-17-2``: a new MLflow version is a new Job, so it runs again; so is
    a rotated application-role password (``-db2``), which the Job sets (a Job's pod template is
    immutable, and a changed Secret alone would not run it again)."""
    name = "mlflow-db-migrate-" + mlflow_version.replace(".", "-").replace("+", "-").lower()
    return f"{name}-db{database_password_generation}" if database_password_generation else name


def admin_password_job_name(generation: int) -> str:
    return f"mlflow-admin-password-g{generation}"


def migration_job(
    name: str,
    job_name: str,
    settings: ServerConfig,
    rendered: Rendered,
    opts: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.batch.v1.Job:
    """Bootstraps the auth database and the application role and migrates both databases
    straight to RDS, before the Deployment (named by :func:`migration_job_name`)."""
    ns = settings.namespace
    secret = k8s.core.v1.Secret(
        f"{name}-migration-secret",
        metadata={"name": job_name, "namespace": ns, "labels": dict(MIGRATION_LABELS)},
        type="Opaque",
        string_data={
            "bootstrap.json": pulumi.Output.secret(rendered.apply(lambda r: r.bootstrap_document)),
            "migrator.pgpass": pulumi.Output.secret(rendered.apply(lambda r: r.migrator_pgpass)),
        },
        opts=opts,
    )
    resources = Resources("250m", "512Mi").spec()
    migrate = container(
        "migrate",
        settings.image,
        resources,
        command=["python", BOOTSTRAP_RUNNER, f"{RUN_DIR}/bootstrap.json"],
        env=[{"name": "PGPASSFILE", "value": f"{RUN_DIR}/migrator.pgpass"}],
        volumeMounts=[
            {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    pod = pod_spec(
        settings.service_account,
        init_containers=[
            stage_secrets_container(settings.image, ["bootstrap.json", "migrator.pgpass"], resources, rds_ca=True)
        ],
        containers=[migrate],
        volumes=[secrets_volume(job_name), run_volume("16Mi"), scratch_volume("256Mi")],
        restart_policy="Never",
    )
    return k8s.batch.v1.Job(
        f"{name}-migration",
        metadata={"name": job_name, "namespace": ns, "labels": dict(MIGRATION_LABELS)},
        spec=api_object(job_spec(MIGRATION_LABELS, pod, backoff_limit=3, active_deadline_seconds=1800)),
        # Pulumi waits for the Job to complete; the Deployment depends on it. The pod names its
        # ServiceAccount and Secret by plain strings, so Pulumi cannot infer these edges.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret, *depends_on])),
    )


def admin_password_job(
    name: str,
    settings: ServerConfig,
    generation: int,
    passwords: Mapping[str, pulumi.Output[str]],
    opts: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.batch.v1.Job:
    """Applies a rotated admin password through MLflow's update-password API: the
    environment only seeds an *empty* user store, so a new value there changes nothing.
    A no-op when the new password already works; otherwise it logs in with the previous
    one. Runs after the Deployment, through the public HTTPS URL (verified TLS).

    ``passwords``: ``admin_password`` (generation ``generation``) and ``previous_admin_password``."""
    ns = settings.namespace
    job_name = admin_password_job_name(generation)
    files = ["admin-password", "previous-admin-password"]
    secret = k8s.core.v1.Secret(
        f"{name}-admin-password-secret",
        metadata={"name": job_name, "namespace": ns, "labels": ADMIN_PASSWORD_LABELS},
        type="Opaque",
        string_data={
            "admin-password": pulumi.Output.secret(passwords["admin_password"]),
            "previous-admin-password": pulumi.Output.secret(passwords["previous_admin_password"]),
        },
        opts=opts,
    )
    resources = Resources("50m", "128Mi").spec()
    admin_password_network_policy(name, ns, opts)
    apply = container(
        "apply",
        settings.image,
        resources,
        command=[
            "python",
            ADMIN_PASSWORD_RUNNER,
            f"https://{settings.host}",
            ADMIN_USERNAME,
            f"{RUN_DIR}/admin-password",
            f"{RUN_DIR}/previous-admin-password",
        ],
        volumeMounts=[{"name": "run", "mountPath": RUN_DIR, "readOnly": True}],
    )
    pod = pod_spec(
        settings.service_account,
        init_containers=[stage_secrets_container(settings.image, files, resources, rds_ca=False)],
        containers=[apply],
        volumes=[secrets_volume(job_name), run_volume("1Mi")],
        restart_policy="Never",
    )
    return k8s.batch.v1.Job(
        f"{name}-admin-password",
        metadata={"name": job_name, "namespace": ns, "labels": ADMIN_PASSWORD_LABELS},
        spec=api_object(job_spec(ADMIN_PASSWORD_LABELS, pod, backoff_limit=6, active_deadline_seconds=900)),
        # The server must run (and have seeded the user store) before its password changes.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret, *depends_on])),
    )
