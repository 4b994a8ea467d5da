"""Alarms and a dashboard for one stack: an SNS topic (KMS-encrypted, e-mail subscriptions from
config), CloudWatch alarms on the tracking database sized by ``rendering.alarms`` from the same
numbers as the parameter group and the pools, and a dashboard with those signals plus the
ingress's request and error rates where CloudWatch has them (the ALB; ingress-nginx's NLB has no
HTTP metrics, its request metrics are Prometheus metrics: docs/observability.md)."""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.kms import rotating_key
from rendering.alarms import AlarmSpec, DatabaseSizes, database_alarms
from rendering.pools import CapacityInputs
from stackconfig.schema import DatabaseConfig, IngressClass, MonitoringConfig, ServerConfig

ALB_NAME_PREFIX = "k8s-{namespace}-mlflow"
"""The AWS Load Balancer Controller names an Ingress's ALB ``k8s-<namespace>-<ingress>-<hash>``;
the dashboard finds its metrics by that prefix (the ARN suffix is known only once it exists)."""


def database_sizes(settings: DatabaseConfig, server: ServerConfig | None = None) -> DatabaseSizes:
    """The alarm inputs from the config: what ``components.database`` tunes from, and the
    server sizes the pool plan is made of."""
    capacity = None
    if server is not None:
        capacity = CapacityInputs(server.max_replicas, server.workers, server.in_flight_per_worker, 0)
    return DatabaseSizes(
        instance_id_hint=settings.instance_class,
        memory_bytes=settings.memory_bytes,
        allocated_storage_gib=settings.allocated_storage_gib,
        max_connections=settings.max_connections,
        server_capacity=capacity,
    )


class MonitoringArgs(TypedDict):
    settings: MonitoringConfig
    database: DatabaseConfig
    server: NotRequired[ServerConfig]
    """For the pool plan's figure in the connections alarm's description."""
    database_instance_identifier: pulumi.Input[str]
    ingress_class: IngressClass
    namespace: str
    """The tracking server's namespace (names the ALB)."""
    region: str
    tags: NotRequired[dict[str, str]]


def _key_policy(account_id: str, partition: str) -> str:
    """The account administers the key; CloudWatch may use it to publish alarms to the topic
    (an alarm cannot publish to a topic encrypted with the AWS-managed SNS key)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        }
    )


def _metric_widget(spec: AlarmSpec, instance: str, region: str, x: int, y: int) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": f"RDS {spec.metric_name}",
            "region": region,
            "stat": spec.statistic,
            "period": spec.period_seconds,
            "metrics": [["AWS/RDS", spec.metric_name, "DBInstanceIdentifier", instance]],
            "annotations": {"horizontal": [{"label": f"alarm ({spec.unit_label})", "value": spec.threshold}]},
        },
    }


def dashboard_body(
    alarms: tuple[AlarmSpec, ...], instance: str, region: str, ingress_class: IngressClass, namespace: str
) -> str:
    widgets = [_metric_widget(spec, instance, region, 12 * (i % 2), 6 * (i // 2)) for i, spec in enumerate(alarms)]
    top = 6 * ((len(alarms) + 1) // 2)
    if ingress_class == "alb":
        alb = ALB_NAME_PREFIX.format(namespace=namespace)

        def search(metric: str, ident: str) -> dict[str, Any]:
            query = f"SEARCH('{{AWS/ApplicationELB,LoadBalancer}} MetricName=\"{metric}\" {alb}', 'Sum', 60)"
            return {"expression": query, "id": ident}

        widgets += [
            {
                "type": "metric",
                "x": 0,
                "y": top,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "ALB requests per minute",
                    "region": region,
                    "metrics": [[search("RequestCount", "requests")]],
                },
            },
            {
                "type": "metric",
                "x": 12,
                "y": top,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "ALB errors per minute (target 5xx, ALB 5xx, target 4xx)",
                    "region": region,
                    "metrics": [
                        [search("HTTPCode_Target_5XX_Count", "target5xx")],
                        [search("HTTPCode_ELB_5XX_Count", "elb5xx")],
                        [search("HTTPCode_Target_4XX_Count", "target4xx")],
                    ],
                },
            },
        ]
    else:
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": top,
                "width": 24,
                "height": 3,
                "properties": {
                    "markdown": "Ingress: ingress-nginx behind a Network Load Balancer, which has no HTTP "
                    "metrics in CloudWatch. Request and error rates are the controller's Prometheus metrics "
                    "(`nginx_ingress_controller_requests`), see docs/observability.md."
                },
            }
        )
    return json.dumps({"widgets": widgets})


class Monitoring(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    alarm_specs: tuple[AlarmSpec, ...]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:Monitoring", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.get("tags", {})
        settings = args["settings"]
        identity = aws.get_caller_identity_output()
        partition = aws.get_partition_output()
        self.kms_key = rotating_key(
            f"{name}-key",
            f"{name}: alarm topic encryption",
            tags,
            child,
            policy=pulumi.Output.all(identity.account_id, partition.partition).apply(lambda v: _key_policy(v[0], v[1])),
        )
        self.topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=self.kms_key.arn, tags=tags, opts=child)
        self.subscriptions = [
            aws.sns.TopicSubscription(
                f"{name}-alarms-email-{index}", topic=self.topic.arn, protocol="email", endpoint=email, opts=child
            )
            for index, email in enumerate(settings.alarm_emails)
        ]
        self.alarm_specs = database_alarms(database_sizes(args["database"], args.get("server")))
        instance = args["database_instance_identifier"]
        self.alarms = [
            aws.cloudwatch.MetricAlarm(
                f"{name}-db-{spec.key}",
                alarm_description=spec.description,
                namespace="AWS/RDS",
                metric_name=spec.metric_name,
                dimensions={"DBInstanceIdentifier": instance},
                statistic=spec.statistic,
                period=spec.period_seconds,
                evaluation_periods=spec.evaluation_periods,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                treat_missing_data="missing",
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                tags=tags,
                opts=child,
            )
            for spec in self.alarm_specs
        ]
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{name}",
            dashboard_body=pulumi.Output.from_input(instance).apply(
                lambda identifier: dashboard_body(
                    self.alarm_specs, identifier, args["region"], args["ingress_class"], args["namespace"]
                )
            ),
            opts=child,
        )
        self.topic_arn = self.topic.arn
        self.dashboard_name = self.dashboard.dashboard_name
        self.register_outputs({"topicArn": self.topic_arn, "dashboardName": self.dashboard_name})
