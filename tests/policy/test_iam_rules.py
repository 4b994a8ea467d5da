"""IAM rules: mutations of the training and tracking-server role policies the program renders."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from policy.rules import iam
from tests.policy.harness import Captured, capture, one, resource_violations, urn_for, violations

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

POLICIES_WITH_FAILING_CASES = {iam.iam_no_wildcards.name, iam.iam_training_put_and_get.name}


def role_policy(role: str, stack: str = "prod") -> Captured:
    return one(capture(stack), ROLE_POLICY, f"{role}-artifacts")


def edit(change: Callable[[list[dict[str, Any]]], object]) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        document = json.loads(raw["policy"])
        change(document["Statement"])
        raw["policy"] = json.dumps(document)

    return apply


def objects(statements: list[dict[str, Any]]) -> dict[str, Any]:
    (statement,) = [s for s in statements if s["Sid"] == "ArtifactObjects"]
    return statement


WILDCARDS: dict[str, tuple[Callable[[list[dict[str, Any]]], object], str]] = {
    "service wildcard action": (lambda s: objects(s).update(Action=["s3:*"]), "wildcard actions"),
    "star action": (lambda s: objects(s).update(Action="*"), "wildcard actions"),
    "prefix wildcard action": (lambda s: objects(s)["Action"].append("s3:Get*"), "wildcard actions"),
    "star resource": (lambda s: objects(s).update(Resource="*"), "wildcard resources"),
    "every bucket": (lambda s: objects(s).update(Resource="arn:aws:s3:::*"), "wildcard resources"),
    "every object of the bucket": (
        lambda s: objects(s).update(Resource=objects(s)["Resource"].rsplit("/", 2)[0] + "/*"),
        "wildcard resources",
    ),
    "every key": (
        lambda s: [
            x.update(Resource="arn:aws:kms:us-east-1:123456789012:key/*") for x in s if x["Sid"] == "ArtifactKey"
        ],
        "wildcard resources",
    ),
    "not action": (lambda s: s.append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "x"}), "NotAction"),
    "not resource": (
        lambda s: s.append({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::x"}),
        "NotResource",
    ),
}


@pytest.mark.parametrize("role", ["training", "server"])
@pytest.mark.parametrize("breaker", sorted(WILDCARDS))
def test_role_policies_grant_no_wildcards(role: str, breaker: str) -> None:
    policy = role_policy(f"mlflow-prod-{role}")
    assert resource_violations(iam.iam_no_wildcards, policy) == []
    change, expected = WILDCARDS[breaker]
    found = resource_violations(iam.iam_no_wildcards, policy.mutated(edit(change)))
    assert found and all(expected in message for message in found), found


def test_a_wildcard_deny_is_not_a_grant() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    policy = role_policy("mlflow-prod-training").mutated(edit(lambda s: s.append(deny)))
    assert resource_violations(iam.iam_no_wildcards, policy) == []


def test_inline_role_policies_are_checked_too() -> None:
    wildcard = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    urn = urn_for("aws:iam/role:Role", "r", parents=["mlflow:index:TrainingJobAccess"])
    found = violations(iam.iam_no_wildcards, "aws:iam/role:Role", {"inlinePolicies": [{"policy": wildcard}]}, urn=urn)
    assert len(found) == 2


def test_roles_outside_our_components_are_out_of_scope_unless_configured() -> None:
    """EKS add-on roles (AWS-documented policies with ``Resource: *``) are not the platform's roles."""
    wildcard = {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]})}
    urn = urn_for(ROLE_POLICY, "lb-controller", parents=["mlflow:index:Cluster"])
    assert violations(iam.iam_no_wildcards, ROLE_POLICY, wildcard, urn=urn) == []
    configured = {"componentTypes": ["mlflow:index:Cluster"]}
    assert violations(iam.iam_no_wildcards, ROLE_POLICY, wildcard, urn=urn, config=configured)


def test_unparseable_policy_fails() -> None:
    policy = role_policy("mlflow-prod-server").mutated(lambda raw: raw.update(policy="not json"))
    assert resource_violations(iam.iam_no_wildcards, policy) == [
        "The policy is missing or is not a JSON policy document."
    ]


def _get_elsewhere(statements: list[dict[str, Any]], effect: str, same_resource: bool = False) -> None:
    """Move s3:GetObject out of the artifact statement into its own, elsewhere or denied."""
    objects(statements)["Action"].remove("s3:GetObject")
    resource = objects(statements)["Resource"] if same_resource else "arn:aws:s3:::elsewhere/mlflow/*"
    statements.append({"Effect": effect, "Action": "s3:GetObject", "Resource": resource})


PUT_GET_BREAKERS: dict[str, tuple[Callable[[list[dict[str, Any]]], object], str]] = {
    "no GetObject": (lambda s: objects(s)["Action"].remove("s3:GetObject"), "PutObject but not s3:GetObject"),
    "no PutObject": (lambda s: objects(s)["Action"].remove("s3:PutObject"), "GetObject but not s3:PutObject"),
    "neither": (lambda s: s.remove(objects(s)), "neither"),
    "different prefixes": (lambda s: _get_elsewhere(s, "Allow"), "different resources"),
    "get only denied": (lambda s: _get_elsewhere(s, "Deny", same_resource=True), "PutObject but not s3:GetObject"),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("breaker", sorted(PUT_GET_BREAKERS))
def test_training_role_must_put_and_get_the_same_artifacts(stack: str, breaker: str) -> None:
    policy = role_policy(f"mlflow-{stack}-training", stack)
    assert resource_violations(iam.iam_training_put_and_get, policy) == []
    change, expected = PUT_GET_BREAKERS[breaker]
    (message,) = resource_violations(iam.iam_training_put_and_get, policy.mutated(edit(change)))
    assert expected in message


def test_the_server_role_is_not_held_to_the_training_rule() -> None:
    """In direct mode the server only reads and deletes: no PutObject, by design."""
    server = role_policy("mlflow-prod-server")
    assert "s3:PutObject" not in server.raw["policy"]
    assert resource_violations(iam.iam_training_put_and_get, server) == []
