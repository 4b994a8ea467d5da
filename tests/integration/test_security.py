"""Security behaviour at the platform's edge, as an attacker or a careless client meets it:
authentication, authorization between teams, the Host-header check, HTTP→HTTPS, TLS that is
really verified, and the MLflow CVE regressions that matter behind basic-auth.

Every request goes to nginx's TLS endpoint with the generated CA as the only trust anchor,
except where a test is about something else on purpose (plain HTTP, a client without the CA,
the MLflow port behind nginx)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform

from .conftest import Edge, module_platform

# Team ownership (the platform's MLflow app) on this module's platform: no extra platform start.
from .team_ownership_cases import (  # noqa: F401 - collected by pytest in this module
    declared,
    team_users,
    test_a_member_creates_team_objects_and_a_teammate_reads_them,
    test_a_member_is_refused_another_teams_names_with_the_rule_and_allowed_names,
    test_a_teamless_user_is_refused_everything,
    test_admins_are_exempt,
    test_renames_are_held_to_the_same_rules,
)

pytestmark = pytest.mark.timeout(600)

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
SEARCH_POST = "/api/2.0/mlflow/experiments/search"
RECO = "recommendation-team/product-ranking/hyperparameter-search"
FRAUD = "fraud-team/transaction-scoring/model-comparison"
PASSWORD = "a-long-enough-pw-"  # + user name: basic-auth wants >= 12 characters


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    yield from module_platform("security", access_mode="proxied")


@pytest.fixture(scope="module")
def edge(platform: LocalPlatform) -> Edge:
    return Edge.of(platform)


@dataclass(frozen=True)
class Teams:
    reco_experiment: str
    fraud_experiment: str
    reco_run: str
    fraud_run: str
    reader: tuple[str, str]  # READ on the recommendation experiment only
    fraud_editor: tuple[str, str]  # EDIT on the fraud experiment only
    nobody: tuple[str, str]  # an account without any grant


def _ok(response: requests.Response) -> Any:
    assert response.status_code == 200, (
        f"{response.request.method} {response.url}: {response.status_code} {response.text}"
    )
    return response.json() if response.content else {}


@pytest.fixture(scope="module")
def teams(edge: Edge) -> Teams:
    """Two teams' experiments with a run each, and three users, all made by the admin through
    MLflow's basic-auth REST API (only admins may create users or grant permissions)."""
    experiments = {}
    runs = {}
    for name in (RECO, FRAUD):
        created = _ok(edge.as_admin("POST", "/api/2.0/mlflow/experiments/create", json={"name": name}))
        experiment_id = str(created["experiment_id"])
        experiments[name] = experiment_id
        run = _ok(edge.as_admin("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}))
        run_id = str(run["run"]["info"]["run_id"])
        _ok(
            edge.as_admin(
                "POST",
                "/api/2.0/mlflow/runs/log-metric",
                json={"run_id": run_id, "key": "val_score", "value": 0.5, "timestamp": 0, "step": 0},
            )
        )
        runs[name] = run_id
    users = {}
    for username in ("reco-reader", "fraud-editor", "no-grants"):
        credentials = (username, PASSWORD + username)
        created = _ok(
            edge.as_admin(
                "POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": credentials[1]}
            )
        )
        assert created["user"] == {"id": created["user"]["id"], "is_admin": False, "username": username}
        users[username] = credentials
    for username, experiment, permission in (("reco-reader", RECO, "READ"), ("fraud-editor", FRAUD, "EDIT")):
        _ok(
            edge.as_admin(
                "POST",
                "/api/3.0/mlflow/users/permissions/grant",
                json={
                    "username": username,
                    "resource_type": "experiment",
                    "resource_id": experiments[experiment],
                    "permission": permission,
                },
            )
        )
    return Teams(
        experiments[RECO],
        experiments[FRAUD],
        runs[RECO],
        runs[FRAUD],
        users["reco-reader"],
        users["fraud-editor"],
        users["no-grants"],
    )


# -- authentication --------------------------------------------------------------------------


def test_requests_without_credentials_are_challenged(edge: Edge) -> None:
    response = edge.request("GET", SEARCH)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")
    assert edge.request("GET", "/").status_code == 401, "the UI is behind the same authentication"


def test_wrong_password_and_unknown_user_are_rejected(edge: Edge) -> None:
    assert edge.request("GET", SEARCH, auth=(edge.admin[0], "not-the-password-1")).status_code == 401
    assert edge.request("GET", SEARCH, auth=(edge.admin[0], edge.admin[1] + "x")).status_code == 401
    assert edge.request("GET", SEARCH, auth=("intruder", edge.admin[1])).status_code == 401
    assert edge.request("GET", SEARCH, auth=edge.admin).status_code == 200, "the right credentials work"


def test_the_old_default_admin_credentials_are_rejected(edge: Edge) -> None:
    """MLflow < 3.16.1 shipped admin/password1234 (GHSA-gq3w-7jj3-x7gr); our admin has a
    generated password."""
    assert edge.admin[1] != "password1234" and len(edge.admin[1]) >= 12
    assert edge.request("GET", SEARCH, auth=("admin", "password1234")).status_code == 401
    response = edge.request(
        "POST",
        "/api/2.0/mlflow/users/create",
        auth=("admin", "password1234"),
        json={"username": "backdoor", "password": "backdoor-password-1"},
    )
    assert response.status_code == 401
    assert edge.as_admin("GET", "/api/2.0/mlflow/users/get", params={"username": "backdoor"}).status_code == 404


def test_health_is_open_but_version_and_the_apis_are_not(edge: Edge) -> None:
    assert edge.request("GET", "/health").status_code == 200
    for path in ("/version", "/api/2.0/mlflow/users/current", "/ajax-api/2.0/mlflow/experiments/search"):
        assert edge.request("GET", path).status_code == 401, path


@pytest.mark.parametrize(
    "path",
    ["/ajax-api/3.0/jobs/", "/ajax-api/3.0/jobs/search", "/v1/traces", "/ajax-api/3.0/mlflow/traces"],
)
def test_job_and_trace_endpoints_require_authentication(edge: Edge, path: str) -> None:
    """CVE-2026-0545 / CVE-2026-2652: these FastAPI routes skipped basic-auth before 3.10."""
    response = edge.request("POST", path, json={})
    assert response.status_code == 401, f"{path}: {response.status_code} {response.text[:200]}"
    assert edge.as_admin("POST", path, json={}).status_code != 401, f"{path} exists and accepts the admin"


# -- authorization: a non-admin user gets exactly what it was granted ------------------------


def test_a_read_only_user_reads_its_team_experiment(edge: Edge, teams: Teams) -> None:
    got = _ok(
        edge.request(
            "GET", "/api/2.0/mlflow/experiments/get", auth=teams.reader, params={"experiment_id": teams.reco_experiment}
        )
    )
    assert got["experiment"]["name"] == RECO
    runs = _ok(
        edge.request(
            "POST", "/api/2.0/mlflow/runs/search", auth=teams.reader, json={"experiment_ids": [teams.reco_experiment]}
        )
    )
    assert [r["info"]["run_id"] for r in runs["runs"]] == [teams.reco_run]
    listed = _ok(edge.request("POST", SEARCH_POST, auth=teams.reader, json={"max_results": 100}))
    assert [e["name"] for e in listed["experiments"]] == [RECO], "search shows only what was granted"


def test_a_read_only_user_cannot_write_even_in_its_team_experiment(edge: Edge, teams: Teams) -> None:
    create = edge.request(
        "POST", "/api/2.0/mlflow/runs/create", auth=teams.reader, json={"experiment_id": teams.reco_experiment}
    )
    assert create.status_code == 403
    log = edge.request(
        "POST",
        "/api/2.0/mlflow/runs/log-metric",
        auth=teams.reader,
        json={"run_id": teams.reco_run, "key": "val_score", "value": 9.9, "timestamp": 0, "step": 1},
    )
    assert log.status_code == 403
    delete = edge.request("POST", "/api/2.0/mlflow/runs/delete", auth=teams.reader, json={"run_id": teams.reco_run})
    assert delete.status_code == 403
    run = _ok(edge.as_admin("GET", "/api/2.0/mlflow/runs/get", params={"run_id": teams.reco_run}))
    assert run["run"]["info"]["lifecycle_stage"] == "active"
    assert run["run"]["data"]["metrics"] == [{"key": "val_score", "value": 0.5, "timestamp": 0, "step": 0}]


def test_a_read_only_user_cannot_touch_another_teams_experiment(edge: Edge, teams: Teams) -> None:
    create = edge.request(
        "POST", "/api/2.0/mlflow/runs/create", auth=teams.reader, json={"experiment_id": teams.fraud_experiment}
    )
    assert create.status_code == 403
    assert "Permission denied" in create.text
    read = edge.request(
        "GET", "/api/2.0/mlflow/experiments/get", auth=teams.reader, params={"experiment_id": teams.fraud_experiment}
    )
    assert read.status_code == 403
    run = edge.request("GET", "/api/2.0/mlflow/runs/get", auth=teams.reader, params={"run_id": teams.fraud_run})
    assert run.status_code == 403


def test_an_editor_writes_only_in_its_own_team_experiment(edge: Edge, teams: Teams) -> None:
    created = _ok(
        edge.request(
            "POST",
            "/api/2.0/mlflow/runs/create",
            auth=teams.fraud_editor,
            json={"experiment_id": teams.fraud_experiment},
        )
    )
    assert created["run"]["info"]["experiment_id"] == teams.fraud_experiment
    other = edge.request(
        "POST", "/api/2.0/mlflow/runs/create", auth=teams.fraud_editor, json={"experiment_id": teams.reco_experiment}
    )
    assert other.status_code == 403


def test_a_user_without_grants_sees_nothing_and_cannot_administer(edge: Edge, teams: Teams) -> None:
    """Our default permission is NO_PERMISSIONS (MLflow's own default, READ, would show every
    experiment to every account)."""
    listed = _ok(edge.request("POST", SEARCH_POST, auth=teams.nobody, json={"max_results": 100}))
    assert listed.get("experiments", []) == []
    for experiment in (teams.reco_experiment, teams.fraud_experiment):
        response = edge.request(
            "GET", "/api/2.0/mlflow/experiments/get", auth=teams.nobody, params={"experiment_id": experiment}
        )
        assert response.status_code == 403
    escalate = edge.request(
        "PATCH",
        "/api/2.0/mlflow/users/update-admin",
        auth=teams.nobody,
        json={"username": teams.nobody[0], "is_admin": True},
    )
    assert escalate.status_code == 403
    grant = edge.request(
        "POST",
        "/api/3.0/mlflow/users/permissions/grant",
        auth=teams.nobody,
        json={
            "username": teams.nobody[0],
            "resource_type": "experiment",
            "resource_id": teams.fraud_experiment,
            "permission": "MANAGE",
        },
    )
    assert grant.status_code == 403
    signup = edge.request(
        "POST",
        "/api/2.0/mlflow/users/create",
        auth=teams.nobody,
        json={"username": "sockpuppet", "password": "sockpuppet-password"},
    )
    assert signup.status_code == 403
    user = _ok(edge.as_admin("GET", "/api/2.0/mlflow/users/get", params={"username": teams.nobody[0]}))
    assert user["user"]["is_admin"] is False


# -- Host header, plain HTTP, TLS ------------------------------------------------------------


def test_a_foreign_host_header_is_refused_through_nginx_and_at_the_server(edge: Edge, platform: LocalPlatform) -> None:
    """DNS-rebinding protection: nginx passes the client's Host on; MLflow refuses names it was
    not configured for, also when someone reaches its port behind nginx directly."""
    through_nginx = edge.request("GET", SEARCH, auth=edge.admin, headers={"Host": "evil.example"})
    assert through_nginx.status_code == 403
    assert "Invalid Host header" in through_nginx.text
    port = platform.component("mlflow").port
    assert port is not None
    behind = f"http://127.0.0.1:{port}"
    with requests.Session() as session:
        session.trust_env = False
        refused = session.get(behind + SEARCH, headers={"Host": "evil.example:443"}, timeout=30)
        assert refused.status_code == 403 and "Invalid Host header" in refused.text
        allowed = session.get(behind + SEARCH, timeout=30)  # Host: 127.0.0.1:<port>
        assert allowed.status_code == 401, "a configured host reaches authentication"
    assert edge.request("GET", SEARCH, auth=edge.admin).status_code == 200


def test_plain_http_is_redirected_to_https(edge: Edge, platform: LocalPlatform) -> None:
    ports = platform.metadata()["ports"]
    assert isinstance(ports, dict)
    plain = f"http://localhost:{ports['http']}"
    with requests.Session() as session:
        session.trust_env = False
        for method in ("GET", "POST"):
            response = session.request(method, plain + SEARCH, allow_redirects=False, timeout=30)
            assert response.status_code == 308, "308 keeps the method and body (POST stays POST)"
            assert response.headers["Location"] == f"https://localhost:{ports['https']}{SEARCH}"
            assert "experiments" not in response.text, "nothing is served over plain HTTP"
        with pytest.raises(requests.exceptions.SSLError):
            session.get(plain + "/health", timeout=30)  # following it needs TLS trust like any HTTPS call
    followed = edge.request("GET", "/health", base=plain, allow_redirects=True)
    assert followed.status_code == 200 and followed.url.startswith("https://localhost:")
    assert [r.status_code for r in followed.history] == [308]


def test_tls_is_verified_against_the_generated_ca(edge: Edge) -> None:
    """Verification is real: without the CA the same request fails with a certificate error;
    with it, the chain ends at our CA and the name matches."""
    with requests.Session() as session:
        session.trust_env = False  # public roots only (certifi), no REQUESTS_CA_BUNDLE
        with pytest.raises(requests.exceptions.SSLError, match=r"(?i)certificate verify failed"):
            session.get(edge.url + "/health", timeout=30)
    system_roots = ssl.create_default_context()
    host, port = "localhost", int(edge.url.rsplit(":", 1)[1])
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection((host, port), timeout=30) as raw,
        system_roots.wrap_socket(raw, server_hostname=host),
    ):
        pass
    ours = ssl.create_default_context(cafile=str(edge.ca_cert))
    with socket.create_connection((host, port), timeout=30) as raw, ours.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert()
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    issuer = dict(item[0] for item in cert["issuer"])
    assert issuer["commonName"] == "mlflow-platform local CA"
    assert ("DNS", "localhost") in cert["subjectAltName"]
    with (
        pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname|mismatch"),
        socket.create_connection((host, port), timeout=30) as raw,
        ours.wrap_socket(raw, server_hostname="mlflow.example.com"),
    ):
        pass
    assert edge.request("GET", "/health").status_code == 200


def test_artifact_path_traversal_is_refused(edge: Edge, teams: Teams) -> None:
    """CVE-2023-1176/2356/6909, CVE-2026-2033 family: as the admin, on a real run."""
    for path in ("../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "a/../../../etc/passwd"):
        response = edge.as_admin("GET", "/get-artifact", params={"path": path, "run_uuid": teams.reco_run})
        assert 400 <= response.status_code < 500, f"{path}: {response.status_code}"
        assert "root:" not in response.text
    proxied = edge.as_admin("GET", "/api/2.0/mlflow-artifacts/artifacts/..%2F..%2F..%2Fetc%2Fpasswd")
    assert 400 <= proxied.status_code < 500 and "root:" not in proxied.text
