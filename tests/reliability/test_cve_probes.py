"""MLflow CVE probes against the running platform, through nginx's TLS endpoint, each asserting
the exact refusal (status code and message) and that nothing leaked or was created.

From docs/../shared/reference/security-pgbouncer-performance.md §2. Probes that
``tests/integration/test_security.py`` already makes are not repeated here: ``/get-artifact``
traversal (four spellings) and one ``mlflow-artifacts`` traversal, POST without credentials to
the job and trace routes, ``admin``/``password1234`` on the REST API through nginx, and a
foreign Host header on a GET. These add the other routes and spellings of the same CVEs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform
from tests.integration.conftest import Edge

pytestmark = pytest.mark.timeout(300)

NOT_AUTHENTICATED = "You are not authenticated"
INVALID_PATH = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
NOBODY = ("cve-nobody", "cve-nobody-password-1")
OLD_DEFAULT = ("admin", "password1234")


@dataclass(frozen=True)
class Fixture:
    experiment_id: str
    experiment_name: str
    run_id: str
    model: str
    version: str


def _ok(response: requests.Response) -> Any:
    assert response.status_code == 200, (
        f"{response.request.method} {response.url}: {response.status_code} {response.text}"
    )
    return response.json() if response.content else {}


@pytest.fixture(scope="module")
def data(platform: LocalPlatform) -> Iterator[Fixture]:
    """Something to leak: an experiment with a run and a registered model version (admin-owned),
    and an account without any grant."""
    edge = Edge.of(platform)
    name = "cve-probes/secret-project/experiment"
    experiment_id = str(
        _ok(edge.as_admin("POST", "/api/2.0/mlflow/experiments/create", json={"name": name}))["experiment_id"]
    )
    run = _ok(edge.as_admin("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}))["run"][
        "info"
    ]
    model = "cve-probe-model"
    _ok(edge.as_admin("POST", "/api/2.0/mlflow/registered-models/create", json={"name": model}))
    version = _ok(
        edge.as_admin(
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json={"name": model, "source": f"{run['artifact_uri']}/model", "run_id": run["run_id"]},
        )
    )["model_version"]["version"]
    _ok(edge.as_admin("POST", "/api/2.0/mlflow/users/create", json={"username": NOBODY[0], "password": NOBODY[1]}))
    yield Fixture(experiment_id, name, str(run["run_id"]), model, str(version))


def _experiment_exists(edge: Edge, name: str) -> bool:
    response = edge.as_admin("GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


# -- path traversal in artifact routes -------------------------------------------------------


def test_model_version_artifact_route_refuses_traversal(edge: Edge, data: Fixture) -> None:
    """CVE-2023-1177 (CVSS 9.8): the model-version artifact route, on a real model version."""
    response = edge.as_admin(
        "GET",
        "/model-versions/get-artifact",
        params={"path": "../../../../etc/passwd", "name": data.model, "version": data.version},
    )
    assert response.status_code == 400
    assert {k: response.json()[k] for k in INVALID_PATH} == INVALID_PATH
    assert "root:" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/api/2.0/mlflow-artifacts/artifacts/%252e%252e%252f%252e%252e%252fetc%252fpasswd", None),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts/%2E%2E/%2E%2E/%2E%2E/etc/passwd", None),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts", {"path": "../../../etc"}),
        ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/..%2F..%2F..%2Fetc%2Fpasswd", None),
    ],
    ids=["double-encoded", "encoded-dots", "list-parent", "delete-cve-2023-6831"],
)
def test_proxied_artifact_routes_refuse_other_traversal_spellings(
    edge: Edge, method: str, path: str, params: dict[str, str] | None
) -> None:
    """CVE-2023-2356/6831, CVE-2026-2033: encodings nginx passes on, a directory listing, a delete."""
    response = edge.as_admin(method, path, params=params)
    assert response.status_code == 400, f"{response.status_code} {response.text[:200]}"
    assert {k: response.json()[k] for k in INVALID_PATH} == INVALID_PATH
    assert "root:" not in response.text and "passwd" not in response.text


def test_backslash_traversal_reaches_no_file(edge: Edge) -> None:
    """CVE-2023-2780 (``\\..\\``): on S3 a backslash is an ordinary key character, so the server
    looks for an object literally named ``..\\..\\etc\\passwd`` under the artifact root, finds
    none, and answers 500 — no file content, no directory listing."""
    response = edge.as_admin("GET", "/api/2.0/mlflow-artifacts/artifacts/..%5C..%5C..%5Cetc%5Cpasswd")
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "root:" not in response.text and "/bin/" not in response.text


def test_fragment_in_an_artifact_location_is_refused(edge: Edge) -> None:
    """CVE-2024-1483/1558/1560/1594/3848: ``#`` fragments used to bypass the traversal check."""
    name = "cve-probes/fragment-location"
    response = edge.as_admin(
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json={"name": name, "artifact_location": "http:///#/../../../../etc/"},
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "can't include fragments" in response.json()["message"]
    assert not _experiment_exists(edge, name), "nothing was created"


# -- endpoints that skipped authentication in some release ------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/2.0/mlflow/webhooks/1/test", {}),  # CVE-2026-64849: unauthenticated full-read SSRF
        ("GET", "/api/2.0/mlflow/webhooks", None),
        ("POST", "/ajax-api/3.0/mlflow/scorer/invoke", {}),  # CVE-2026-115886 / -116692
        ("POST", "/ajax-api/2.0/mlflow/gateway-proxy", {"gateway_path": "http://169.254.169.254/"}),  # CVE-2025-52967
        ("GET", "/api/3.0/mlflow/gateway/secrets/list", None),  # CVE-2026-3198
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/1/r/artifacts/f", {"path": "f", "num_parts": 1}),  # -2651
        ("GET", "/ajax-api/3.0/jobs/some-job-id", None),  # CVE-2026-0545 (POSTs are in test_security)
        ("GET", "/signup", None),  # CVE-2025-1473: CSRF on signup
    ],
    ids=[
        "webhook-test",
        "webhook-list",
        "scorer-invoke",
        "gateway-proxy",
        "gateway-secrets",
        "mpu-create",
        "job-get",
        "signup",
    ],
)
def test_endpoint_refuses_requests_without_credentials(edge: Edge, method: str, path: str, body: Any) -> None:
    response = edge.request(method, path, json=body)
    assert response.status_code == 401, f"{path}: {response.status_code} {response.text[:200]}"
    assert response.text.startswith(NOT_AUTHENTICATED)
    assert "{" not in response.text, "no API payload in the refusal"


def test_webhooks_are_admin_only_and_cannot_target_internal_addresses(edge: Edge, data: Fixture) -> None:
    """CVE-2026-64849: besides authentication, only admins manage webhooks, and the server
    refuses URLs that resolve to non-public addresses (the cloud metadata service, loopback)
    or use plain HTTP."""
    for method, path in (("POST", "/api/2.0/mlflow/webhooks/1/test"), ("GET", "/api/2.0/mlflow/webhooks")):
        refused = edge.request(method, path, auth=NOBODY, json={} if method == "POST" else None)
        assert (refused.status_code, refused.text) == (403, "Permission denied"), path
    events = [{"entity": "MODEL_VERSION", "action": "CREATED"}]
    for url, message in (
        ("https://169.254.169.254/latest/meta-data/", "must not resolve to a non-public IP address"),
        ("https://127.0.0.1:5432/", "must not resolve to a non-public IP address"),
        ("http://169.254.169.254/latest/meta-data/", "Invalid webhook URL scheme: 'http'"),
    ):
        response = edge.as_admin(
            "POST", "/api/2.0/mlflow/webhooks", json={"name": "probe", "url": url, "events": events}
        )
        assert response.status_code == 400, f"{url}: {response.status_code} {response.text[:200]}"
        assert message in response.json()["message"]
    listed = _ok(edge.as_admin("GET", "/api/2.0/mlflow/webhooks"))
    assert [w for w in listed.get("webhooks", []) if w.get("name") == "probe"] == [], "no webhook was created"


# -- the old default admin credentials -------------------------------------------------------


def test_old_default_admin_credentials_fail_at_the_server_port_and_on_graphql(
    edge: Edge, platform: LocalPlatform
) -> None:
    """CVE-2026-2635 (GHSA-gq3w-7jj3-x7gr): ``admin``/``password1234`` also on MLflow's own port
    behind nginx and on the GraphQL route (the REST API through nginx is in test_security)."""
    port = platform.component("mlflow").port
    with requests.Session() as session:
        session.trust_env = False
        direct = session.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5", auth=OLD_DEFAULT, timeout=30
        )
    assert direct.status_code == 401 and direct.text.startswith(NOT_AUTHENTICATED)
    graphql = edge.request("POST", "/graphql", auth=OLD_DEFAULT, json={"query": "{ __typename }"})
    assert graphql.status_code == 401 and "data" not in graphql.text


# -- a foreign Host header, a foreign Origin -------------------------------------------------


def test_a_foreign_host_header_cannot_write(edge: Edge) -> None:
    """CVE-2025-14279 (DNS rebinding): a rebinding page's POST carries the attacker's Host;
    with valid credentials it is still refused and creates nothing."""
    name = "cve-probes/rebinding"
    response = edge.as_admin(
        "POST", "/api/2.0/mlflow/experiments/create", json={"name": name}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 403
    assert response.text == "Invalid Host header - possible DNS rebinding attack detected"
    assert not _experiment_exists(edge, name)


def test_a_foreign_origin_cannot_write(edge: Edge) -> None:
    """Cross-site request forgery from a browser holding the credentials: a write with a foreign
    ``Origin`` is blocked by the security middleware and creates nothing."""
    name = "cve-probes/cross-origin"
    response = edge.as_admin(
        "POST", "/api/2.0/mlflow/experiments/create", json={"name": name}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert response.text == "Cross-origin request blocked"
    assert not _experiment_exists(edge, name)


# -- GraphQL ---------------------------------------------------------------------------------


def _experiment_query(experiment_id: str) -> dict[str, str]:
    return {
        "query": f'query {{ mlflowGetExperiment(input: {{experimentId: "{experiment_id}"}}) '
        "{ experiment { name artifactLocation } } }"
    }


@pytest.mark.parametrize(("method", "path"), [("POST", "/graphql"), ("POST", "/ajax-api/graphql"), ("GET", "/graphql")])
def test_graphql_without_credentials_is_refused(edge: Edge, data: Fixture, method: str, path: str) -> None:
    query = _experiment_query(data.experiment_id)
    response = edge.request(
        method, path, params=query if method == "GET" else None, json=query if method == "POST" else None
    )
    assert response.status_code == 401
    assert response.text.startswith(NOT_AUTHENTICATED)
    assert data.experiment_name not in response.text


def test_graphql_enforces_permissions(edge: Edge, data: Fixture) -> None:
    """Issue #25676: GraphQL bypassed basic-auth permissions unless
    ``MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH`` was set. An account without a grant gets ``null``; the
    admin gets the experiment (so the query itself is right)."""
    query = _experiment_query(data.experiment_id)
    denied = _ok(edge.request("POST", "/graphql", auth=NOBODY, json=query))
    assert denied == {"data": {"mlflowGetExperiment": None}, "errors": None}
    allowed = _ok(edge.as_admin("POST", "/graphql", json=query))
    assert allowed["data"]["mlflowGetExperiment"]["experiment"]["name"] == data.experiment_name


# -- accounts and enumeration ----------------------------------------------------------------


def test_a_weak_password_is_refused_and_no_account_is_created(edge: Edge) -> None:
    """CVE-2025-1474 / CVE-2025-11200: short or empty passwords were accepted."""
    short = edge.as_admin("POST", "/api/2.0/mlflow/users/create", json={"username": "weakling", "password": "short"})
    assert short.status_code == 400
    assert short.json()["message"] == "Password must be at least 12 characters."
    empty = edge.as_admin("POST", "/api/2.0/mlflow/users/create", json={"username": "weakling", "password": ""})
    assert (empty.status_code, empty.text) == (400, "Username and password cannot be empty.")
    assert edge.as_admin("GET", "/api/2.0/mlflow/users/get", params={"username": "weakling"}).status_code == 404


def test_model_versions_cannot_be_enumerated_without_a_grant(edge: Edge, data: Fixture) -> None:
    """CVE-2026-2734: SearchModelVersions returned every version to any account."""
    hidden = _ok(edge.request("GET", "/api/2.0/mlflow/model-versions/search", auth=NOBODY))
    assert hidden.get("model_versions", []) == []
    assert data.model not in str(hidden)
    seen = _ok(edge.as_admin("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{data.model}'"}))
    assert [v["version"] for v in seen["model_versions"]] == [data.version]
