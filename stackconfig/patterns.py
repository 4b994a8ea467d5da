"""The value shapes stack keys are checked against (the declarations in ``stackconfig.schema``
name them; the loader's explicit functions use them too). One place, so a shape used by several
keys (a role ARN, a Kubernetes name) is written once."""

from __future__ import annotations

import re

from rendering.rds_parameters import FAMILY_MAJORS

VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
TRANSIT_GATEWAY_ID = re.compile(r"^tgw-[0-9a-f]{8,17}$")
OIDC_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[A-Za-z0-9.\-]+(/[A-Za-z0-9.\-]+)*$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$|^\d{12}$")
"""A role/user ARN or a bare account id (an ``{type: AWS}`` principal)."""
PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
S3_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
IMAGE_BY_DIGEST = re.compile(r"^[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9._\-]+)+(:[\w.\-]{1,128})?@sha256:[0-9a-f]{64}$")
DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f\-]{36}$")
CPU = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
CIDR = re.compile(r"^(\d{1,3}\.){3}\d{1,3}/(\d|[12]\d|3[0-2])$")
EKS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
EKS_ENDPOINT = re.compile(r"^https://[A-Za-z0-9.-]+\.eks\.amazonaws\.com(\.cn)?$")
BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
K8S_VERSION = re.compile(r"^1\.(2[89]|[3-9][0-9])$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
AMI_TYPE = re.compile(r"^(AL2023|BOTTLEROCKET)_[A-Za-z0-9_]+$")
HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
AZ_NAME = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d+)?(/[\w.\-/]*)?$")
ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
PG_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PG_MAJOR_VERSION = re.compile("^(" + "|".join(str(major) for major in FAMILY_MAJORS) + ")$")
"""``database.engineVersion``: a major whose parameter-group facts ``rendering.rds_parameters`` records."""
TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_CRON_FIELD = r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?)*"
CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
ANY = re.compile(r"(?s).*")
"""Strings checked only by an explicit rule (or not at all)."""

LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""The retentions CloudWatch Logs accepts."""
PI_RETENTION_DAYS = (7, *range(31, 714, 31), 731)
"""Performance Insights: 7 (free tier), a multiple of 31 up to 713, or 731."""
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
