"""The ``mlflow gc`` command both targets run (``rendering.gc``)."""

from __future__ import annotations

import pytest

from rendering.gc import GcSecrets, GcSettings, age_seconds, render_gc
from rendering.mlflow_server import S3Client

BACKEND = "postgresql+psycopg2://mlflow@db.example:5432/mlflow?sslmode=verify-full"


@pytest.mark.parametrize(
    ("age", "seconds"), [("30d", 30 * 86_400), ("12h", 43_200), ("1d12h", 129_600), ("90m", 5_400), ("2s", 2)]
)
def test_age_is_read_like_mlflow_reads_it(age: str, seconds: int):
    assert age_seconds(age) == seconds


@pytest.mark.parametrize("age", ["", "soon", "30", "0d", "1.5d", "-1d", "1d 2h", "d"])
def test_bad_ages_are_refused(age: str):
    with pytest.raises(ValueError, match="age"):
        age_seconds(age)


def test_direct_mode_talks_to_the_database_and_s3_only():
    launch = render_gc(
        GcSettings(
            older_than="30d",
            backend_store_uri=BACKEND,
            access_mode="direct",
            pgpassfile="/run/gc.pgpass",
            s3=S3Client(region="eu-west-1"),
        )
    )
    assert launch.argv == (
        "mlflow",
        "gc",
        "--older-than",
        "30d",
        "--backend-store-uri",
        BACKEND,
        "--tracking-uri",
        BACKEND,
    )
    assert launch.env == {"PGPASSFILE": "/run/gc.pgpass", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert launch.secret_env == {}
    with pytest.raises(ValueError, match="no credentials"):
        render_gc(GcSettings("30d", BACKEND, "direct"), GcSecrets("admin", "x" * 20))


def test_proxied_mode_goes_through_the_server_with_its_login():
    settings = GcSettings("7d", BACKEND, "proxied", tracking_uri="http://mlflow.mlflow.svc:80")
    launch = render_gc(settings, GcSecrets("admin", "p" * 24))
    assert launch.argv[launch.argv.index("--tracking-uri") + 1] == "http://mlflow.mlflow.svc:80"
    assert launch.secret_env == {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "p" * 24}
    assert "p" * 24 not in repr(launch.argv) + repr(launch.env)
    with pytest.raises(ValueError, match="credentials"):
        render_gc(settings)
    with pytest.raises(ValueError, match="tracking_uri"):
        GcSettings("7d", BACKEND, "proxied")


def test_only_psycopg2_urls_are_accepted():
    with pytest.raises(ValueError, match="psycopg2"):
        GcSettings("7d", "postgresql://mlflow@db/mlflow", "direct")
