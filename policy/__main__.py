"""Entry point Pulumi runs for ``--policy-pack policy``: the ``PolicyPack`` call and nothing else.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks forever, so nothing may
import this module (tests import ``policy.rules``). Pulumi runs it with ``runpy.run_path`` on this
directory, which puts only ``policy/`` on ``sys.path``; the repository root is added so the rules
import as the same ``policy.rules`` module the tests use.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import ALL_POLICIES

PolicyPack(
    name="mlflow-platform-security",
    description="Security invariants of the MLflow platform: S3, RDS, IAM, EKS and Kubernetes.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(ALL_POLICIES),
)
