"""The basic-auth REST API of MLflow 3.17 (``mlflow/server/auth/routes.py``), over MLflow's own
HTTP layer so the standard client environment (URI, credentials, CA, retries) applies.

3.17 replaced the per-resource ``/experiments/permissions/create`` and
``/registered-models/permissions/create`` endpoints with one grant API on the user's synthetic
role (``/api/3.0/mlflow/users/permissions/grant``); ``grant`` refuses an existing row, so changing
a permission goes through ``roles/permissions/update`` on that row's id. The paths are spelled
out here (importing ``mlflow.server.auth`` drags in the Flask server); a test checks them
against the installed MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cli import OpsError, one_line

CREATE_USER = "/api/2.0/mlflow/users/create"
GET_USER = "/api/2.0/mlflow/users/get"
GET_CURRENT_USER = "/api/2.0/mlflow/users/current"
UPDATE_USER_PASSWORD = "/api/2.0/mlflow/users/update-password"  # noqa: S105 - a URL path
LIST_USER_PERMISSIONS = "/api/3.0/mlflow/users/permissions/list"
GRANT_USER_PERMISSION = "/api/3.0/mlflow/users/permissions/grant"
LIST_ROLE_PERMISSIONS = "/api/3.0/mlflow/roles/permissions/list"
UPDATE_ROLE_PERMISSION = "/api/3.0/mlflow/roles/permissions/update"

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
"""What a resource-level grant accepts in 3.17 (``RESOURCE_GRANTABLE_PERMISSIONS``)."""


@dataclass(frozen=True)
class Grant:
    """One resource-level permission row of a user's direct (synthetic-role) grants."""

    role_id: int
    resource_type: str
    resource_id: str
    permission: str


class AuthApi:
    def __init__(self, tracking_uri: str, username: str | None = None, password: str | None = None) -> None:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import MlflowHostCreds

        base = get_default_host_creds(tracking_uri)
        own = username is None  # the environment's identity, with whatever auth it configured
        self.creds = MlflowHostCreds(
            host=tracking_uri,
            username=base.username if own else username,
            password=base.password if own else password,
            token=base.token if own else None,
            auth=base.auth if own else None,
            server_cert_path=base.server_cert_path,
            client_cert_path=base.client_cert_path,
            ignore_tls_verification=base.ignore_tls_verification,
        )
        self.tracking_uri = tracking_uri

    def as_user(self, username: str, password: str) -> AuthApi:
        return AuthApi(self.tracking_uri, username, password)

    def call(
        self, method: str, endpoint: str, *, params: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON body; no retries on 4xx (MLflow's layer retries 429/5xx/connection)."""
        from mlflow.utils.rest_utils import http_request

        kwargs: dict[str, Any] = {}
        if params is not None:
            kwargs["params"] = params
        if body is not None:
            kwargs["json"] = body
        response = http_request(self.creds, endpoint, method, **kwargs)
        if response is None:  # only with raise_on_status=False, which is not used here
            raise OpsError(f"no response from {self.tracking_uri}{endpoint}")
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {"message": response.text}
        return response.status_code, data if isinstance(data, dict) else {"value": data}

    def expect(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        what: str,
    ) -> dict[str, Any]:
        status, data = self.call(method, endpoint, params=params, body=body)
        if status != 200:
            raise OpsError(one_line(f"{what}: HTTP {status} {data.get('error_code', '')} {data.get('message', '')}"))
        return data

    def current_user(self) -> dict[str, Any] | None:
        """The caller's user record, or None when the server runs without the basic-auth app."""
        status, data = self.call("GET", GET_CURRENT_USER)
        if status == 404:
            return None
        if status != 200:
            raise OpsError(f"who am I: HTTP {status} {data.get('message', '')}".strip())
        user: dict[str, Any] = data.get("user", {})
        return user

    def password_works(self, username: str, password: str) -> bool:
        status, _ = self.as_user(username, password).call("GET", GET_CURRENT_USER)
        if status in (200, 401):
            return status == 200
        raise OpsError(f"checking the password of {username!r}: HTTP {status}")

    def get_user(self, username: str) -> dict[str, Any] | None:
        status, data = self.call("GET", GET_USER, params={"username": username})
        if status == 404 or data.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            return None
        if status != 200:
            raise OpsError(one_line(f"get user {username!r}: HTTP {status} {data.get('message', '')}"))
        user: dict[str, Any] = data["user"]
        return user

    def create_user(self, username: str, password: str) -> None:
        self.expect(
            "POST", CREATE_USER, body={"username": username, "password": password}, what=f"create user {username!r}"
        )

    def update_password(self, username: str, password: str) -> None:
        self.expect(
            "PATCH",
            UPDATE_USER_PASSWORD,
            body={"username": username, "password": password},
            what=f"update the password of {username!r}",
        )

    def direct_grants(self, username: str, user_id: int) -> list[Grant]:
        """The user's own grants (the synthetic ``__user_<id>__`` role), not those of shared roles."""
        data = self.expect("GET", LIST_USER_PERMISSIONS, params={"username": username}, what="list permissions")
        synthetic = f"__user_{user_id}__"
        return [
            Grant(int(row["role_id"]), row["resource_type"], str(row["resource_pattern"]), row["permission"])
            for row in data.get("permissions", [])
            if row.get("role_name") == synthetic
        ]

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        self.expect(
            "POST",
            GRANT_USER_PERMISSION,
            body={
                "username": username,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "permission": permission,
            },
            what=f"grant {permission} on {resource_type} {resource_id} to {username!r}",
        )

    def ensure_grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Grant, or bring an existing direct grant to ``permission``. A grant can appear between
        planning and applying: the platform's server app (``mlflow_platform_server.hooks``) grants
        each member of the owning team on every experiment or model the team's name covers, also
        when the bootstrap (an admin) creates it; MLflow then answers the second grant with 400
        RESOURCE_ALREADY_EXISTS."""
        body = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
        status, data = self.call("POST", GRANT_USER_PERMISSION, body={**body, "permission": permission})
        if status == 200:
            return
        if data.get("error_code") != "RESOURCE_ALREADY_EXISTS":
            what = f"grant {permission} on {resource_type} {resource_id} to {username!r}"
            raise OpsError(one_line(f"{what}: HTTP {status} {data.get('error_code', '')} {data.get('message', '')}"))
        user = self.get_user(username)
        existing = [
            g
            for g in (self.direct_grants(username, int(user["id"])) if user else [])
            if (g.resource_type, g.resource_id) == (resource_type, resource_id)
        ]
        if len(existing) == 1 and existing[0].permission != permission:
            self.update_grant(existing[0], permission)
        elif len(existing) != 1:
            raise OpsError(f"grant on {resource_type} {resource_id} to {username!r} exists but cannot be read back")

    def update_grant(self, grant: Grant, permission: str) -> None:
        data = self.expect(
            "GET", LIST_ROLE_PERMISSIONS, params={"role_id": str(grant.role_id)}, what="list role permissions"
        )
        rows = [
            row
            for row in data.get("role_permissions", [])
            if row.get("resource_type") == grant.resource_type and str(row.get("resource_pattern")) == grant.resource_id
        ]
        if len(rows) != 1:
            raise OpsError(f"cannot find the grant on {grant.resource_type} {grant.resource_id} to update")
        self.expect(
            "PATCH",
            UPDATE_ROLE_PERMISSION,
            body={"role_permission_id": rows[0]["id"], "permission": permission},
            what=f"update the permission on {grant.resource_type} {grant.resource_id}",
        )
