"""Model-registry reads shared by promote, validate and cleanup.

Aliases are read from the registered model (one call returns all of them) rather than with
``get_model_version_by_alias``, which reports a missing alias as INVALID_PARAMETER_VALUE — the
same code as a genuinely bad request, so ``except MlflowException: pass`` (the guide's pattern)
also swallows outages. Here "absent" is a value and every other error propagates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cli import ConfigError, Refused

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def make_client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def is_not_found(error: BaseException) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None


def parse_model_uri(uri: str) -> ModelRef:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    match = _MODEL_URI.match(uri)
    if match is None:
        raise ConfigError(f"--model-uri must be models:/<name>/<version> or models:/<name>@<alias>, got {uri!r}")
    return ModelRef(match["name"], match["version"], match["alias"])


def get_aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of a registered model; refuses (exit 1) when the model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if is_not_found(error):
            raise Refused(f"registered model {name!r} does not exist") from None
        raise
    return {alias: str(version) for alias, version in dict(model.aliases).items()}


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        if is_not_found(error):
            raise Refused(f"model {name!r} has no version {version}") from None
        raise


def resolve(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    aliases = get_aliases(client, ref.name)  # first: "no such model" reads better than "no version"
    if ref.version is not None:
        return get_version(client, ref.name, ref.version)
    if ref.alias not in aliases:
        raise Refused(f"model {ref.name!r} has no alias {ref.alias!r}")
    return get_version(client, ref.name, aliases[str(ref.alias)])


def iter_model_versions(client: MlflowClient, page_size: int) -> Iterator[ModelVersion]:
    """Every model version the caller can see, across all pages (the default page is 10,000:
    a registry larger than that is exactly where a first-page-only read deletes the wrong run)."""
    token: str | None = None
    while True:
        page: Any = client.search_model_versions(max_results=page_size, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def backing_run_id(client: MlflowClient, version: ModelVersion) -> str | None:
    """The run that produced a model version: its ``run_id``, else a ``runs:/<id>/…`` source,
    else (MLflow 3 logged models, source ``models:/m-…``) the logged model's source run."""
    if version.run_id:
        return str(version.run_id)
    source = str(version.source or "")
    if source.startswith("runs:/"):
        return source.removeprefix("runs:/").split("/", 1)[0] or None
    model_id = getattr(version, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    if model_id:
        logged = client.get_logged_model(model_id)
        return str(logged.source_run_id) if logged.source_run_id else None
    return None
