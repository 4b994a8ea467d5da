"""EKS: the raw ``aws.eks.Cluster`` and the ``pulumi_eks`` component (Secrets encryption, logs, endpoint)."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from policy.rules.common import as_list, as_mapping, get_path, is_mapping, truthy
from policy.rules.registry import resource_rule

EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_COMPONENT = "eks:index:Cluster"
EKS_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


@resource_rule(
    name="eks-secrets-encryption",
    description="EKS envelope-encrypts Kubernetes Secrets with a KMS key (FSBP EKS.3, CKV_AWS_58, CIS EKS 5.3.1).",
    severity=Severity.HIGH,
)
def eks_secrets_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == EKS_COMPONENT:
        if not args.props.get("encryptionConfigKeyArn"):
            report("encryptionConfigKeyArn is not set: Kubernetes Secrets are not envelope-encrypted.", None)
        return
    if args.resource_type != EKS_CLUSTER:
        return
    configs = [c for c in as_list(args.props.get("encryptionConfig")) if is_mapping(c)]
    if not any("secrets" in as_list(c.get("resources")) and get_path(c, "provider", "keyArn") for c in configs):
        report("encryptionConfig must cover resources ['secrets'] with a KMS provider.keyArn.", None)


@resource_rule(
    name="eks-control-plane-logging",
    description="EKS sends all five control-plane log types to CloudWatch (FSBP EKS.8, CKV_AWS_37, CIS EKS 2.1.1).",
    severity=Severity.MEDIUM,
)
def eks_control_plane_logging(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (EKS_CLUSTER, EKS_COMPONENT):
        return
    enabled = {str(t) for t in as_list(args.props.get("enabledClusterLogTypes"))}
    missing = [t for t in EKS_LOG_TYPES if t not in enabled]
    if missing:
        report(f"Control-plane log types not enabled: {', '.join(missing)}.", None)


@resource_rule(
    name="eks-endpoint-access-restricted",
    description="The EKS API endpoint is private, or public only to listed CIDRs (FSBP EKS.1, CKV_AWS_38/39, CIS EKS "
    "5.4.1/5.4.2).",
    severity=Severity.HIGH,
)
def eks_endpoint_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == EKS_CLUSTER:
        settings = as_mapping(args.props.get("vpcConfig"))
    elif args.resource_type == EKS_COMPONENT:
        settings = args.props
    else:
        return
    # AWS defaults: public endpoint on, open to 0.0.0.0/0; private endpoint off.
    public = settings.get("endpointPublicAccess")
    public = True if public is None else truthy(public)
    if not truthy(settings.get("endpointPrivateAccess")):
        report("endpointPrivateAccess must be true so nodes and pods reach the API server inside the VPC.", None)
    if not public:
        return
    cidrs = {str(c) for c in as_list(settings.get("publicAccessCidrs"))}
    if not cidrs:
        report("The public endpoint is open to 0.0.0.0/0 (publicAccessCidrs unset): disable it or list CIDRs.", None)
    elif cidrs & OPEN_CIDRS:
        report(f"publicAccessCidrs includes {sorted(cidrs & OPEN_CIDRS)}: list the operators' CIDRs instead.", None)
