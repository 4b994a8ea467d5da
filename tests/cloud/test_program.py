"""The whole program (``infra/__main__.py``) run fresh per stack file, as ``pulumi up`` would."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.pulumi_harness import run_program, stack_file_config

STACKS = ["dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_builds_the_whole_platform(stack: str):
    mocks, outputs, secrets = run_program(stack, stack_file_config(stack))
    components = sorted(r.typ for r in mocks.resources if r.typ.startswith("mlflow:index:"))
    assert components == [
        "mlflow:index:ArtifactStore",
        "mlflow:index:TrackingDatabase",
        "mlflow:index:TrackingServer",
        "mlflow:index:TrackingServerAccess",
        "mlflow:index:TrainingJobAccess",
    ]
    assert outputs["artifactRoot"] == f"s3://{outputs['artifactBucketName']}/mlflow"
    assert outputs["trainingRoleArn"].startswith("arn:aws:iam::")
    assert outputs["trackingServerRoleArn"] != outputs["trainingRoleArn"]
    assert outputs["databaseAddress"].endswith(".rds.amazonaws.com")
    assert outputs["trackingUrl"] == "https://" + (
        "mlflow.example.com" if stack == "prod" else "mlflow.dev.example.com"
    )
    # Exactly the passwords are secret.
    assert {key for key, secret in secrets.items() if secret} == {"databaseMasterPassword", "trackingAdminPassword"}
    # Every resource is a child of one of our components; the only exception is the one
    # explicit Kubernetes provider the program builds.
    loose = [u for u in mocks.urns if "mlflow:index:" not in u]
    assert [u.split("::")[-2].split("$")[-1] for u in loose] == ["pulumi:providers:kubernetes"]


def test_dev_and_prod_differ_as_their_files_say():
    dev_mocks, _, _ = run_program("dev", stack_file_config("dev"))
    prod_mocks, prod_out, _ = run_program("prod", stack_file_config("prod"))
    dev_db = dev_mocks.one("aws:rds/instance:Instance").inputs
    prod_db = prod_mocks.one("aws:rds/instance:Instance").inputs
    assert (dev_db["instanceClass"], prod_db["instanceClass"]) == ("db.t4g.medium", "db.r6g.large")
    assert (dev_db["multiAz"], prod_db["multiAz"]) == (False, True)
    assert (dev_db["deletionProtection"], prod_db["deletionProtection"]) == (False, True)
    assert (dev_db["skipFinalSnapshot"], prod_db["skipFinalSnapshot"]) == (True, False)
    assert dev_mocks.of_type("aws:s3/bucketLogging:BucketLogging") == []
    assert len(prod_mocks.of_type("aws:s3/bucketLogging:BucketLogging")) == 1
    # prod: db.r6g.large = 16 GiB -> shared_buffers 4 GiB = 524288 pages, max_connections 400
    params = {
        p["name"]: p["value"] for p in prod_mocks.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
    }
    assert params["shared_buffers"] == "524288" and params["max_connections"] == "400"
    assert prod_out["databaseMaxConnections"] == 400
    # SageMaker may assume prod's training role, only for this account.
    trust = json.loads(prod_mocks.one("aws:iam/role:Role", "training-role").inputs["assumeRolePolicy"])
    sagemaker = [s for s in trust["Statement"] if s["Principal"] == {"Service": "sagemaker.amazonaws.com"}]
    assert sagemaker and sagemaker[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_proxied_mode_switch_reaches_iam():
    config = stack_file_config("dev")
    artifacts = json.loads(config["mlflow-platform:artifacts"])
    config["mlflow-platform:artifacts"] = json.dumps({**artifacts, "accessMode": "proxied"})
    mocks, outputs, _ = run_program("dev", config)
    assert outputs["artifactAccessMode"] == "proxied"
    assert [p.name for p in mocks.of_type("aws:iam/rolePolicy:RolePolicy")] == ["mlflow-dev-server-artifacts"]


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("mlflow-platform:database", {"instanceClass": "db.z1.mega"}, "mlflow-platform:database.instanceClass"),
        ("mlflow-platform:artifactz", {"accessMode": "direct"}, "mlflow-platform:artifactz"),
    ],
)
def test_invalid_config_fails_the_preview_with_the_key_named(key: str, value: object, named: str):
    config = stack_file_config("dev")
    config[key] = json.dumps(value)
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config)
    assert named in str(caught.value)
    assert "Traceback" not in str(caught.value)
