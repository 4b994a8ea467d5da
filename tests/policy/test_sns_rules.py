"""SNS rules: the alarm topic as the real program registers it, and mutations of it."""

from __future__ import annotations

import pytest

from policy.rules import sns
from tests.policy.harness import Captured, capture, one, resource_violations

POLICIES_WITH_FAILING_CASES = {sns.sns_topic_encrypted.name}


def topic(stack: str) -> Captured:
    return one(capture(stack), sns.SNS_TOPIC, "alarms")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_alarm_topic_is_encrypted_with_a_customer_managed_key(stack: str) -> None:
    assert resource_violations(sns.sns_topic_encrypted, topic(stack)) == []


@pytest.mark.parametrize(("key", "fragment"), [(None, "customer-managed"), ("alias/aws/sns", "CloudWatch")])
def test_unencrypted_or_aws_managed_topics_are_refused(key: str | None, fragment: str) -> None:
    def change(raw: dict[str, object]) -> None:
        if key is None:
            raw.pop("kmsMasterKeyId", None)
        else:
            raw["kmsMasterKeyId"] = key

    (message,) = resource_violations(sns.sns_topic_encrypted, topic("prod").mutated(change))
    assert fragment in message
