"""The fast request path (``mlflow_platform_server.fastpath``) decides exactly as MLflow's basic-auth.

A decision table: every route that goes through the cached lookups (run -> experiment, user,
grants), called as each kind of user, against MLflow's own ``basic-auth`` app and against the
platform's app, on the same databases (``auth_servers.py``). Status AND body must be equal,
except where a team-ownership rule (docs/team-ownership.md) says otherwise; those rows name the
rule. Then invalidation: a change made through our server takes effect on its next request,
while a change made through another server (another replica) is seen only after the TTL or a
teams-file reload, which is what proves the lookups are cached at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform
from localplatform.teams import set_teams
from rendering.ownership import TeamOwnership

from .auth_servers import OUR_APP, STOCK_APP, Server, extra_servers

API2, API3 = "/api/2.0/mlflow", "/api/3.0/mlflow"
MISSING_RUN = "0" * 32
Auth = tuple[str, str] | None


def password(user: str) -> str:
    return f"fastpath-pw-{user}-0123456789"


# user -> grants: (resource_type, resource_id or "{exp}", permission)
GRANTS: dict[str, list[tuple[str, str, str]]] = {
    "fp-owner": [("experiment", "{exp}", "MANAGE")],
    "fp-editor": [("experiment", "{exp}", "EDIT")],
    "fp-reader": [("experiment", "{exp}", "READ")],
    # MLflow 3.17.2's run grants are a tier: resource type "run", pattern "*" only
    # (permissions.py: RESOURCE_TYPE_RUN is WILDCARD_ONLY). Its narrowest form is thus a run-tier
    # grant in the workspace, on top of READ on the experiment (_run_requirement needs both).
    "fp-run-editor": [("experiment", "{exp}", "READ"), ("run", "*", "EDIT")],
    "fp-run-only": [("run", "*", "EDIT")],
    "fp-run-denied": [("experiment", "{exp}", "EDIT"), ("run", "*", "DENY")],
    "fp-nobody": [],
}


@dataclass
class World:
    admin: tuple[str, str]
    experiment_id: str
    run_id: str
    users: dict[str, Auth] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    payload: Callable[[World, str], dict[str, Any]]
    """The request's JSON body (POST/PATCH) or query (GET); the str is the server label."""
    reset: Callable[[Server, World], None] | None = None
    """Run as admin before each call, so both servers see the same state."""
    body_compared: bool = True
    """False for creates: the new object's id differs; errors are still compared whole."""
    ownership_rule: str | None = None
    """The team-ownership rule that refuses this route to every non-admin (no teams declared)."""


def _admin(server: Server, world: World, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = server.request(method, path, world.admin, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response


def _set_tag(server: Server, world: World) -> None:
    _admin(server, world, "POST", f"{API2}/runs/set-tag", json={"run_id": world.run_id, "key": "doomed", "value": "x"})


def _restore(server: Server, world: World) -> None:
    _admin(server, world, "POST", f"{API2}/runs/restore", json={"run_id": world.run_id})


def _run(world: World, _label: str) -> dict[str, Any]:
    return {"run_id": world.run_id}


METRIC = {"key": "loss", "value": 0.5, "timestamp": 1000, "step": 3}
OWNERSHIP_EXPERIMENT = "experiments are named <team>/<project>/<type> for a team where you are EDIT or MANAGE"
OWNERSHIP_MODEL = "registered models and prompts are named <prefix> or <prefix>-<name> with a prefix of a team"

ROUTES = [
    Route("get run", "GET", f"{API2}/runs/get", _run),
    Route("get missing run", "GET", f"{API2}/runs/get", lambda w, _: {"run_id": MISSING_RUN}),
    Route("log metric", "POST", f"{API2}/runs/log-metric", lambda w, _: {"run_id": w.run_id, **METRIC}),
    Route(
        "log batch",
        "POST",
        f"{API2}/runs/log-batch",
        lambda w, _: {
            "run_id": w.run_id,
            "metrics": [{**METRIC, "step": s} for s in range(5)],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "team", "value": "a"}],
        },
    ),
    Route("log batch, missing run", "POST", f"{API2}/runs/log-batch", lambda w, _: {"run_id": MISSING_RUN}),
    Route(
        "log param",
        "POST",
        f"{API2}/runs/log-parameter",
        lambda w, _: {"run_id": w.run_id, "key": "lr", "value": "0.1"},
    ),
    Route("set tag", "POST", f"{API2}/runs/set-tag", lambda w, _: {"run_id": w.run_id, "key": "stage", "value": "dev"}),
    Route(
        "delete tag", "POST", f"{API2}/runs/delete-tag", lambda w, _: {"run_id": w.run_id, "key": "doomed"}, _set_tag
    ),
    Route("update run", "POST", f"{API2}/runs/update", lambda w, _: {"run_id": w.run_id, "status": "RUNNING"}),
    Route("log inputs", "POST", f"{API2}/runs/log-inputs", lambda w, _: {"run_id": w.run_id, "datasets": []}),
    Route(
        "metric history", "GET", f"{API2}/metrics/get-history", lambda w, _: {"run_id": w.run_id, "metric_key": "loss"}
    ),
    Route("list artifacts", "GET", f"{API2}/artifacts/list", _run),
    Route("delete run", "POST", f"{API2}/runs/delete", _run, _restore),
    Route("get experiment", "GET", f"{API2}/experiments/get", lambda w, _: {"experiment_id": w.experiment_id}),
    Route(
        "search runs",
        "POST",
        f"{API2}/runs/search",
        lambda w, _: {"experiment_ids": [w.experiment_id], "max_results": 5},
    ),
    Route(
        "create run",
        "POST",
        f"{API2}/runs/create",
        lambda w, _: {"experiment_id": w.experiment_id, "start_time": 1},
        body_compared=False,
    ),
    Route(
        "create experiment",
        "POST",
        f"{API2}/experiments/create",
        lambda w, label: {"name": f"fp-created-{label}-{time.monotonic_ns()}"},
        body_compared=False,
        ownership_rule=OWNERSHIP_EXPERIMENT,
    ),
    Route(
        "create registered model",
        "POST",
        f"{API2}/registered-models/create",
        lambda w, label: {"name": f"fp-model-{label}-{time.monotonic_ns()}"},
        body_compared=False,
        ownership_rule=OWNERSHIP_MODEL,
    ),
]
USERS = [*GRANTS, "admin", "anonymous"]


def call(server: Server, world: World, route: Route, auth: Auth) -> requests.Response:
    if route.reset is not None:
        route.reset(server, world)
    payload = route.payload(world, server.label)
    if route.method == "GET":
        return server.request("GET", route.path, auth, params=payload)
    return server.request(route.method, route.path, auth, json=payload)


@pytest.fixture(scope="module")
def servers(store_platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    with extra_servers(store_platform, [STOCK_APP, OUR_APP], tmp_path_factory.mktemp("auth-fast-path")) as started:
        yield dict(zip(("stock", "ours"), started, strict=True))


@pytest.fixture(scope="module")
def world(store_platform: LocalPlatform, servers: dict[str, Server]) -> World:
    env = store_platform.client_env()
    admin = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    ours = servers["ours"]
    experiment_id = ours.request("POST", f"{API2}/experiments/create", admin, json={"name": "fp-table"}).json()[
        "experiment_id"
    ]
    run = ours.request("POST", f"{API2}/runs/create", admin, json={"experiment_id": experiment_id, "start_time": 1})
    world = World(admin, experiment_id, run.json()["run"]["info"]["run_id"])
    _admin(ours, world, "POST", f"{API2}/runs/log-metric", json={"run_id": world.run_id, **METRIC})
    for user, grants in GRANTS.items():
        _admin(ours, world, "POST", f"{API2}/users/create", json={"username": user, "password": password(user)})
        for resource_type, resource_id, permission in grants:
            grant(ours, world, user, resource_type, resource_id.format(exp=experiment_id), permission)
        world.users[user] = (user, password(user))
    world.users["admin"] = admin
    world.users["anonymous"] = None
    return world


def grant(server: Server, world: World, user: str, resource_type: str, resource_id: str, permission: str) -> None:
    body = {"username": user, "resource_type": resource_type, "resource_id": resource_id, "permission": permission}
    _admin(server, world, "POST", f"{API3}/users/permissions/grant", json=body)


def revoke(server: Server, world: World, user: str, resource_type: str, resource_id: str) -> None:
    body = {"username": user, "resource_type": resource_type, "resource_id": resource_id}
    _admin(server, world, "POST", f"{API3}/users/permissions/revoke", json=body)


def test_every_route_decides_as_stock_basic_auth(servers: dict[str, Server], world: World) -> None:
    stock, ours = servers["stock"], servers["ours"]
    mismatches, expected, statuses = [], [], set()
    for route in ROUTES:
        for user in USERS:
            auth = world.users[user]
            a, b = call(stock, world, route, auth), call(ours, world, route, auth)
            statuses.add((route.name, user, a.status_code))
            both_ok = a.status_code == b.status_code == 200
            same = a.status_code == b.status_code and (a.content == b.content or (both_ok and not route.body_compared))
            if same:
                continue
            if route.ownership_rule and user not in ("admin", "anonymous"):
                # Expected difference: MLflow lets any authenticated user create; the team rule refuses.
                assert a.status_code == 200 and b.status_code == 403, (route.name, user, b.text)
                assert route.ownership_rule in b.json()["message"], b.text
                expected.append((route.name, user))
                continue
            mismatches.append((route.name, user, a.status_code, a.text[:300], b.status_code, b.text[:300]))
    assert not mismatches, "\n".join(map(str, mismatches))
    # The table means something only if it covers allowed and refused for the run routes.
    codes = {(r, u): c for r, u, c in statuses}
    assert codes[("log batch", "fp-editor")] == 200 and codes[("log batch", "fp-reader")] == 403
    assert codes[("log batch", "fp-run-editor")] == 200 and codes[("log batch", "fp-run-only")] == 403
    assert codes[("log batch", "fp-run-denied")] == 403 and codes[("get run", "fp-nobody")] == 403
    assert codes[("get run", "anonymous")] == 401 and codes[("get missing run", "admin")] == 404
    assert len(expected) == 2 * len(GRANTS), expected
    wrong = ("fp-editor", "not-the-password-at-all")
    a, b = (
        server.request("GET", f"{API2}/runs/get", wrong, params={"run_id": world.run_id}) for server in (stock, ours)
    )
    assert a.status_code == b.status_code == 401 and a.content == b.content


def _get_run_status(server: Server, world: World, user: str) -> int:
    return server.request("GET", f"{API2}/runs/get", world.users[user], params={"run_id": world.run_id}).status_code


def _log_metric_status(server: Server, world: World, user: str) -> int:
    body = {"run_id": world.run_id, **METRIC}
    return server.request("POST", f"{API2}/runs/log-metric", world.users[user], json=body).status_code


def _new_user(server: Server, world: World, user: str) -> None:
    _admin(server, world, "POST", f"{API2}/users/create", json={"username": user, "password": password(user)})
    world.users[user] = (user, password(user))


def test_grant_revoke_and_change_through_our_server_apply_to_the_next_request(
    servers: dict[str, Server], world: World
) -> None:
    ours, exp = servers["ours"], world.experiment_id
    user = "fp-invalidation"
    _new_user(ours, world, user)
    assert _get_run_status(ours, world, user) == 403  # the empty grant list is now cached
    grant(ours, world, user, "experiment", exp, "READ")
    assert _get_run_status(ours, world, user) == 200
    assert _log_metric_status(ours, world, user) == 403
    revoke(ours, world, user, "experiment", exp)
    assert _get_run_status(ours, world, user) == 403

    # A change through a role: its permission updated from READ to EDIT, then the role unassigned.
    role = _admin(ours, world, "POST", f"{API3}/roles/create", json={"name": "fp-role", "workspace": "default"})
    role_id = role.json()["role"]["id"]
    added = _admin(
        ours,
        world,
        "POST",
        f"{API3}/roles/permissions/add",
        json={"role_id": role_id, "resource_type": "experiment", "resource_pattern": exp, "permission": "READ"},
    )
    _admin(ours, world, "POST", f"{API3}/roles/assign", json={"username": user, "role_id": role_id})
    assert _get_run_status(ours, world, user) == 200 and _log_metric_status(ours, world, user) == 403
    permission_id = added.json()["role_permission"]["id"]
    _admin(
        ours,
        world,
        "PATCH",
        f"{API3}/roles/permissions/update",
        json={"role_permission_id": permission_id, "permission": "EDIT"},
    )
    assert _log_metric_status(ours, world, user) == 200
    _admin(ours, world, "DELETE", f"{API3}/roles/unassign", json={"username": user, "role_id": role_id})
    assert _get_run_status(ours, world, user) == 403


def test_a_deleted_user_is_refused_at_once_and_an_admin_flag_applies_at_once(
    servers: dict[str, Server], world: World
) -> None:
    ours = servers["ours"]
    user = "fp-deleted"
    _new_user(ours, world, user)
    grant(ours, world, user, "experiment", world.experiment_id, "READ")
    assert _get_run_status(ours, world, user) == 200  # credential, user and grants cached
    assert _log_metric_status(ours, world, user) == 403
    _admin(ours, world, "PATCH", f"{API2}/users/update-admin", json={"username": user, "is_admin": True})
    assert _log_metric_status(ours, world, user) == 200
    _admin(ours, world, "PATCH", f"{API2}/users/update-admin", json={"username": user, "is_admin": False})
    assert _log_metric_status(ours, world, user) == 403
    _admin(ours, world, "DELETE", f"{API2}/users/delete", json={"username": user})
    assert _get_run_status(ours, world, user) == 401


def test_a_change_through_another_server_waits_for_the_ttl_or_a_teams_reload(
    store_platform: LocalPlatform, servers: dict[str, Server], world: World
) -> None:
    """What a change through another worker or replica costs: our worker keeps its cached grants
    (here, for the rest of the 60 s TTL) until a teams-file reload clears them. On MLflow's own
    app this test fails at the first assertion: it reads the grants on every request."""
    stock, ours = servers["stock"], servers["ours"]
    user = "fp-other-replica"
    _new_user(ours, world, user)
    assert _get_run_status(ours, world, user) == 403  # cached: no grant
    grant(stock, world, user, "experiment", world.experiment_id, "READ")
    assert _get_run_status(stock, world, user) == 200
    assert _get_run_status(ours, world, user) == 403, "the grant list was not cached"
    set_teams(store_platform.layout, [TeamOwnership("fp-team", model_prefixes=("fp-reload",), members={})])
    time.sleep(2.5)  # mlflow_platform_server.declaration.CHECK_INTERVAL_S
    assert _get_run_status(ours, world, user) == 200, "the teams-file reload did not clear the grant cache"


STATS_FLUSH_S = 11.0
"""An idle PostgreSQL 15 backend flushes its table statistics within PGSTAT_IDLE_INTERVAL (10 s)."""


def _latest_metric_rows_read(platform: LocalPlatform) -> int:
    """Rows of ``latest_metrics`` PostgreSQL has handed out so far (index and sequential reads)."""
    import psycopg2

    with psycopg2.connect(**platform.database_params("mlflow")) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(idx_tup_fetch, 0) + seq_tup_read FROM pg_stat_user_tables WHERE relname = 'latest_metrics'"
        )
        row = cursor.fetchone()
    connection.close()
    assert row is not None
    return int(row[0])


def test_the_run_lookup_does_not_load_the_run(
    store_platform: LocalPlatform, servers: dict[str, Server], world: World
) -> None:
    """Stock basic-auth loads the whole run (``get_run``: every latest metric) to authorize a
    ``set_tag``; ours reads the run's experiment id only. Counted by PostgreSQL itself: the rows of
    ``latest_metrics`` read while 10 ``set_tag`` requests of a job user are served. (The set-based
    store's ``set_tag`` itself reads no metric.)"""
    run = world.run_id
    batch = [{"key": f"k{i}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(500)]
    _admin(servers["ours"], world, "POST", f"{API2}/runs/log-batch", json={"run_id": run, "metrics": batch})
    editor = world.users["fp-editor"]
    for label, server in servers.items():  # warm: credentials, grants and the run id cached
        tag = {"run_id": run, "key": "w", "value": label}
        assert server.request("POST", f"{API2}/runs/set-tag", editor, json=tag).status_code == 200
    time.sleep(STATS_FLUSH_S)
    read, counted = {}, _latest_metric_rows_read(store_platform)
    for label, server in servers.items():
        tag = {"run_id": run, "key": "w", "value": label}
        for _ in range(10):
            response = server.request("POST", f"{API2}/runs/set-tag", editor, json=tag)
            assert response.status_code == 200, response.text
        time.sleep(STATS_FLUSH_S)
        now = _latest_metric_rows_read(store_platform)
        read[label], counted = now - counted, now
    assert read["stock"] >= 10 * 500, read
    assert read["ours"] < 500, read
