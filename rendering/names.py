"""The platform's role, user and database names, once.

What reads them: the renderers' defaults (``rendering.server_side.PlatformSettings``,
``rendering.auth.AuthSettings``, ``rendering.database_bootstrap.BootstrapSettings``), the local
target (operator sessions, backups, ``mlflow gc``) and the EKS workloads (the gc CronJob, the
admin-password Job). Before, consumers built a dummy ``PlatformSettings(...)`` only to read these
attributes. The cloud may rename the tracking database and the migrator (the stack's database
name and RDS master user, passed into ``PlatformSettings``); the local target never does.
"""

from __future__ import annotations

TRACKING_DATABASE = "mlflow"
"""The tracking store's database (the default; the cloud passes the stack's database name)."""
AUTH_DATABASE = "mlflow_auth"
"""MLflow basic-auth's users and permissions database."""
MIGRATOR_ROLE = "mlflow_admin"
"""The owner that creates the databases and runs migrations: the RDS master user's default name,
and the local cluster's bootstrap superuser."""
APP_ROLE = "mlflow"
"""The server's least-privilege login (through PgBouncer)."""
ADMIN_USERNAME = "admin"
"""MLflow's basic-auth admin."""
STATS_USER = "pgbouncer_stats"
"""PgBouncer ``stats_users`` login of the pool-metrics exporter: SHOW commands only."""
