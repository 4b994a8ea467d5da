"""Alarms, topic and dashboard, asserted on what the program gives AWS for both stack files:
every threshold follows the sizes the parameter group and the pools are rendered from."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from components.monitoring import Monitoring, MonitoringArgs
from rendering.instance_classes import instance_memory_bytes
from rendering.postgres import PostgresTuning, max_connections_for, render_postgres_parameters
from rendering.units import GIB
from stackconfig import load_stack_config, load_stack_file
from stackconfig.schema import StackConfig
from tests.pulumi_harness import ROOT, RecordingMocks, captured_program, run_mocked

STACKS = ["dev", "prod"]
# What each stack file says, read back here only to name the expectation.
EXPECTED_CLASS = {"dev": "db.t4g.medium", "prod": "db.r6g.large"}


def stack_config(stack: str) -> StackConfig:
    return load_stack_config(load_stack_file(ROOT / f"Pulumi.{stack}.yaml"))


def alarms_by_metric(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    found = {r.inputs["metricName"]: r.inputs for r in mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert len(found) == len(mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    return found


def parameter_group_max_connections(mocks: RecordingMocks) -> int:
    group = mocks.one("aws:rds/parameterGroup:ParameterGroup")
    (value,) = [p["value"] for p in group.inputs["parameters"] if p["name"] == "max_connections"]
    return int(value)


@pytest.mark.parametrize("stack", STACKS)
def test_alarm_thresholds_follow_the_rendered_database_sizes(stack: str):
    mocks, _, _ = captured_program(stack)
    config = stack_config(stack)
    assert config.database.instance_class == EXPECTED_CLASS[stack]
    memory = instance_memory_bytes(config.database.instance_class)
    max_connections = max_connections_for(PostgresTuning(memory_bytes=memory))
    # The same number the parameter group sets.
    assert parameter_group_max_connections(mocks) == max_connections
    alarms = alarms_by_metric(mocks)
    assert set(alarms) == {"CPUUtilization", "FreeStorageSpace", "FreeableMemory", "DatabaseConnections"}
    assert alarms["DatabaseConnections"]["threshold"] == math.floor(max_connections * 0.8)
    assert alarms["FreeableMemory"]["threshold"] == math.floor(memory * 0.1)
    assert alarms["FreeStorageSpace"]["threshold"] == math.floor(config.database.allocated_storage_gib * GIB * 0.1)
    assert alarms["CPUUtilization"]["threshold"] == 80
    # The description names the pool plan's ceiling (dev: 1 replica; prod: 5 replicas at the HPA
    # maximum), each pod 2 databases × (2 workers × 8 in flight × 1 connection with the set-based
    # store + 2 reserve).
    planned = {"dev": 1 * 2 * (2 * 8 * 1 + 2) + 10, "prod": 5 * 2 * (2 * 8 * 1 + 2) + 10}[stack]
    assert f"the pool plan opens up to {planned} at full scale" in alarms["DatabaseConnections"]["alarmDescription"]
    # Exact figures for the two stack files (dev: 4 GiB, 20 GiB; prod: 16 GiB, 100 GiB).
    exact = {
        "dev": {"DatabaseConnections": 80, "FreeableMemory": 429496729, "FreeStorageSpace": 2147483648},
        "prod": {"DatabaseConnections": 320, "FreeableMemory": 1717986918, "FreeStorageSpace": 10737418240},
    }[stack]
    for metric, threshold in exact.items():
        assert alarms[metric]["threshold"] == threshold, metric
    assert alarms["DatabaseConnections"]["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarms["FreeableMemory"]["comparisonOperator"] == "LessThanOrEqualToThreshold"
    assert alarms["FreeStorageSpace"]["comparisonOperator"] == "LessThanOrEqualToThreshold"


@pytest.mark.parametrize("stack", STACKS)
def test_alarms_watch_the_stacks_instance_and_notify_the_encrypted_topic(stack: str):
    mocks, outputs, _ = captured_program(stack)
    instance = mocks.one("aws:rds/instance:Instance")
    topic = mocks.one("aws:sns/topic:Topic")
    topic_arn = outputs["alarmTopicArn"]
    identifier = f"{instance.name}-7f3a2b"  # what the mocks return as the instance's identifier
    for alarm in alarms_by_metric(mocks).values():
        assert alarm["namespace"] == "AWS/RDS"
        assert alarm["dimensions"] == {"DBInstanceIdentifier": identifier}
        assert alarm["alarmActions"] == [topic_arn] and alarm["okActions"] == [topic_arn]
    key_arn = next(r for r in mocks.of_type("aws:kms/key:Key") if "monitoring" in r.name)
    assert topic.inputs["kmsMasterKeyId"].endswith(f"{key_arn.name}-7f3a2b")
    policy = json.loads(key_arn.inputs["policy"])
    (cloudwatch,) = [s for s in policy["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert key_arn.inputs["enableKeyRotation"] is True
    emails = [s.inputs["endpoint"] for s in mocks.of_type("aws:sns/topicSubscription:TopicSubscription")]
    assert emails == list(stack_config(stack).monitoring.alarm_emails) and emails


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_shows_the_alarmed_signals_and_the_ingress_where_cloudwatch_has_it(stack: str):
    mocks, _, _ = captured_program(stack)
    body = json.loads(mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    alarms = alarms_by_metric(mocks)
    rds = {
        w["properties"]["metrics"][0][1]: w
        for w in body["widgets"]
        if w["type"] == "metric" and "title" in w["properties"] and w["properties"]["title"].startswith("RDS")
    }
    assert set(rds) == set(alarms)
    for metric, widget in rds.items():
        assert widget["properties"]["annotations"]["horizontal"][0]["value"] == alarms[metric]["threshold"]
    text = json.dumps(body)
    if stack == "prod":  # ALB
        assert "HTTPCode_Target_5XX_Count" in text and "RequestCount" in text and "k8s-mlflow-mlflow" in text
    else:  # nginx behind an NLB: no HTTP metrics in CloudWatch, said so on the dashboard
        assert "ApplicationELB" not in text and "nginx_ingress_controller_requests" in text


def _monitoring_for(config: StackConfig) -> RecordingMocks:
    def build() -> dict[str, Any]:
        component = Monitoring(
            "mon",
            MonitoringArgs(
                settings=config.monitoring,
                database=config.database,
                database_instance_identifier="mlflow-db",
                ingress_class=config.server.ingress.class_name,
                namespace=config.server.namespace,
                region="us-east-1",
            ),
        )
        return {"topic": component.topic_arn}

    mocks, _, _ = run_mocked(build)
    return mocks


@pytest.mark.parametrize("stack", STACKS)
def test_a_bigger_instance_class_moves_the_thresholds(stack: str):
    config = stack_config(stack)
    bigger_class = {"dev": "db.t4g.large", "prod": "db.r6g.xlarge"}[stack]
    values = load_stack_file(ROOT / f"Pulumi.{stack}.yaml")
    values["database"] = {**dict(values["database"]), "instanceClass": bigger_class}  # type: ignore[dict-item]
    bigger = load_stack_config(values)
    assert bigger.database.memory_bytes == 2 * config.database.memory_bytes
    before = alarms_by_metric(_monitoring_for(config))
    after = alarms_by_metric(_monitoring_for(bigger))
    rendered = {
        p.name: p.value for p in render_postgres_parameters(PostgresTuning(memory_bytes=bigger.database.memory_bytes))
    }
    assert after["DatabaseConnections"]["threshold"] == math.floor(int(rendered["max_connections"]) * 0.8)
    assert after["DatabaseConnections"]["threshold"] == 2 * before["DatabaseConnections"]["threshold"]
    assert after["FreeableMemory"]["threshold"] > before["FreeableMemory"]["threshold"]
    assert after["FreeStorageSpace"]["threshold"] == before["FreeStorageSpace"]["threshold"]
    # An explicit maxConnections overrides the memory-derived value, and the alarm follows it.
    pinned = dataclasses.replace(bigger, database=dataclasses.replace(bigger.database, max_connections=150))
    assert alarms_by_metric(_monitoring_for(pinned))["DatabaseConnections"]["threshold"] == 120


def test_monitoring_config_is_validated():
    from stackconfig import ConfigError

    values = load_stack_file(Path(ROOT / "Pulumi.dev.yaml"))
    values["garbageCollection"] = {"schedule": "every night", "olderThan": "2h"}
    values["monitoring"] = {"alarmEmails": ["not-an-email"], "scraperPodLabels": {"bad key!": "x"}}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    message = str(error.value)
    for key in (
        "mlflow-platform:garbageCollection.schedule",
        "mlflow-platform:garbageCollection.olderThan",
        "mlflow-platform:monitoring.alarmEmails",
        "mlflow-platform:monitoring.scraperPodLabels",
    ):
        assert key in message
