"""The executor's own rules, without namespaces: what the kubelet and the image give a container."""

from __future__ import annotations

from rendering.images import PGBOUNCER_IMAGE
from tests.pod.images import PYTHON_BASE_ENV, SERVER_DOCKERFILE, image_table, parse_dockerfile, project_venv
from tests.pod.kubelet import expand


def test_variable_references_expand_as_the_kubelet_expands_them():
    env = {"POD_IP": "198.18.1.2", "EMPTY": ""}
    assert expand("$(POD_IP):8080", env) == "198.18.1.2:8080"
    assert expand("$$(POD_IP)", env) == "$(POD_IP)"  # $$ escapes
    assert expand("$(MISSING)/x", env) == "$(MISSING)/x"  # unknown references stay as written
    assert expand("a$(EMPTY)b", env) == "ab"
    assert expand("$POD_IP ${POD_IP}", env) == "$POD_IP ${POD_IP}"  # only $(...) is Kubernetes syntax


def test_the_server_image_is_read_from_its_dockerfile():
    image = parse_dockerfile(SERVER_DOCKERFILE, PYTHON_BASE_ENV, project_venv())
    assert image.user == (10001, 10001)
    assert image.env["PATH"] == "/opt/mlflow/bin:" + PYTHON_BASE_ENV["PATH"]
    assert image.env["HOME"] == "/tmp"
    assert image.workdir == "/"
    assert image.entrypoint == ("mlflow",)
    assert image.files["/opt/mlflow"] == project_venv()
    assert image.files["/opt/mlflow-platform/run_bootstrap.py"].name == "run_bootstrap.py"
    assert image.files["/opt/mlflow-platform/apply_admin_password.py"].is_file()


def test_only_the_keys_debians_pgbouncer_predates_are_dropped(tmp_path):
    table = image_table("registry.example/server@sha256:" + "0" * 64, tmp_path / "ca.crt", tmp_path)
    assert table[PGBOUNCER_IMAGE].dropped_config_keys == ("max_prepared_statements",)
    assert all(not image.dropped_config_keys for ref, image in table.items() if ref != PGBOUNCER_IMAGE)
    assert all(image.runs and image.does_not_prove for image in table.values())
