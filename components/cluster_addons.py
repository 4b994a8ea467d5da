"""The ingress path of a cluster this stack creates, and the tracking host's DNS record.

``ClusterIngress`` installs, as pinned Helm releases on the Kubernetes provider passed in
``opts``, the controller the stack selects:

- ``alb``: the AWS Load Balancer Controller with its own IRSA role and the upstream IAM policy,
  plus an ACM certificate for the tracking host, DNS-validated in the configured Route 53 zone.
- ``nginx``: ingress-nginx behind an NLB (reconciled by the AWS Load Balancer Controller, IP
  targets: ``rendering.nlb``), plus cert-manager (IRSA role limited to the ACME
  challenge record of the tracking host) and a Let's Encrypt ``ClusterIssuer`` solving DNS-01 in
  the same zone, so it works for internal load balancers too. ingress-nginx is retired upstream
  (no releases or security fixes since March 2026): prefer ``alb``.

``TrackingHostRecord`` points the tracking host at the load balancer once it exists: the
address is read from the Ingress's status (the Kubernetes provider waits for it), so no alias
can be declared before the load balancer is there, and no external-dns needs to run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.irsa import ClusterOidc, IrsaRole, irsa_role
from rendering.nlb import LOAD_BALANCER_CLASS, nlb_service_annotations
from rendering.nlb import PREFIX as NLB_ANNOTATION_PREFIX
from stackconfig.schema import IngressClass


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    repository: str


# Versions verified against upstream release records where this was written (no registry was
# reachable here, so chart digests are not pinned); bump them deliberately, one at a time.
AWS_LOAD_BALANCER_CONTROLLER = Chart("aws-load-balancer-controller", "3.5.0", "https://aws.github.io/eks-charts")
INGRESS_NGINX = Chart("ingress-nginx", "4.15.1", "https://kubernetes.github.io/ingress-nginx")
"""The last release: the project was retired in March 2026."""
CERT_MANAGER = Chart("cert-manager", "v1.21.1", "https://charts.jetstack.io")

LBC_SERVICE_ACCOUNT = ("kube-system", "aws-load-balancer-controller")
CERT_MANAGER_SERVICE_ACCOUNT = ("cert-manager", "cert-manager")
LBC_POLICY_FILE = Path(__file__).resolve().parent / "policies" / "aws-load-balancer-controller.json"
"""The controller's IAM policy as upstream publishes it (docs/install/iam_policy.json, v3 line)."""


def load_balancer_controller_policy() -> dict[str, Any]:
    return json.loads(LBC_POLICY_FILE.read_text())


def cert_manager_policy(partition: str, hosted_zone_id: str, host: str) -> dict[str, Any]:
    """DNS-01 for one name: cert-manager may write only the TXT record ``_acme-challenge.<host>``
    in the one zone, and read that zone's records and the change status."""
    zone = f"arn:{partition}:route53:::hostedzone/{hosted_zone_id}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ChangeStatus",
                "Effect": "Allow",
                "Action": "route53:GetChange",
                "Resource": f"arn:{partition}:route53:::change/*",
            },
            {"Sid": "ReadZone", "Effect": "Allow", "Action": "route53:ListResourceRecordSets", "Resource": zone},
            {
                "Sid": "ChallengeRecord",
                "Effect": "Allow",
                "Action": "route53:ChangeResourceRecordSets",
                "Resource": zone,
                "Condition": {
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"_acme-challenge.{host}"],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
                    }
                },
            },
        ],
    }


class ClusterIngressArgs(TypedDict):
    class_name: IngressClass
    scheme: Literal["internal", "internet-facing"]
    controller_namespace: str
    """ingress-nginx's namespace (the tracking server's NetworkPolicy admits it)."""
    cluster_name: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    issuer_host_path: pulumi.Input[str]
    hosted_zone_id: str
    host: str
    cert_manager_issuer: NotRequired[str]
    """nginx: the ClusterIssuer's name (server.ingress.certManagerIssuer)."""
    acme_email: NotRequired[str]
    acme_server: NotRequired[str]
    tags: NotRequired[dict[str, str]]
    load_balancer_subnet_ids: NotRequired[Sequence[pulumi.Input[str]]]
    """nginx: the NLB's subnets (dedicated, pod-free), pinned on its Service."""


class ClusterIngress(pulumi.ComponentResource):
    certificate_arn: pulumi.Output[str] | None
    """alb: the issued (validated) ACM certificate of the tracking host."""
    releases: list[k8s.helm.v3.Release]

    def __init__(self, name: str, args: ClusterIngressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:ClusterIngress", name, {}, opts)
        self._tags = args.get("tags", {})
        self.partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        self.certificate_arn = None
        self.releases = []
        if args["class_name"] == "alb":
            self._load_balancer_controller(name, args)
            self.certificate_arn = self._certificate(name, args)
        else:
            pulumi.log.warn(
                "server.ingress.className 'nginx': ingress-nginx was retired upstream in March 2026 and gets no "
                f"security fixes; {INGRESS_NGINX.version} is its last chart. Prefer className 'alb'.",
                resource=self,
            )
            # The controller owns ingress-nginx's NLB too: IP targets, no hairpin failure (rendering.nlb).
            lbc = self._load_balancer_controller(name, args)
            self._ingress_nginx(name, args, lbc)
            self._cert_manager(name, args)
        self.register_outputs(
            {"certificateArn": self.certificate_arn, "releases": [release.name for release in self.releases]}
        )

    def _irsa_role(
        self, name: str, args: ClusterIngressArgs, service_account: tuple[str, str], policy: pulumi.Input[str]
    ) -> IrsaRole:
        """A controller's role (``components.irsa``) with ``policy`` inline, both named ``name``."""
        oidc = ClusterOidc(args["oidc_provider_arn"], args["issuer_host_path"])
        child = pulumi.ResourceOptions(parent=self)
        return irsa_role(name, oidc, service_account, child, tags=self._tags, inline_policy=policy)

    def _release(
        self,
        name: str,
        chart: Chart,
        namespace: str,
        values: dict[str, Any],
        depends_on: list[pulumi.Resource] | None = None,
    ) -> k8s.helm.v3.Release:
        release = k8s.helm.v3.Release(
            name,
            name=chart.name,
            chart=chart.name,
            version=chart.version,
            repository_opts={"repo": chart.repository},
            namespace=namespace,
            create_namespace=namespace != "kube-system",
            values=values,
            atomic=True,  # a failed install or upgrade rolls back instead of leaving half a controller
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )
        self.releases.append(release)
        return release

    def _load_balancer_controller(self, name: str, args: ClusterIngressArgs) -> k8s.helm.v3.Release:
        namespace, service_account = LBC_SERVICE_ACCOUNT
        irsa = self._irsa_role(f"{name}-lbc", args, LBC_SERVICE_ACCOUNT, json.dumps(load_balancer_controller_policy()))
        self.lbc_role = irsa.role
        return self._release(
            f"{name}-lbc",
            AWS_LOAD_BALANCER_CONTROLLER,
            namespace,
            {
                "clusterName": args["cluster_name"],
                "region": args["region"],
                "vpcId": args["vpc_id"],  # no instance metadata lookups (nodes allow IMDS hop limit 1)
                "replicaCount": 2,
                "serviceAccount": {
                    "create": True,
                    "name": service_account,
                    "annotations": {"eks.amazonaws.com/role-arn": self.lbc_role.arn},
                },
            },
            depends_on=irsa.grants,
        )

    def _certificate(self, name: str, args: ClusterIngressArgs) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=args["host"],
            validation_method="DNS",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["domainName"], delete_before_replace=False),
        )
        option = certificate.domain_validation_options.apply(_first_validation_option)
        record = aws.route53.Record(
            f"{name}-certificate-validation",
            zone_id=args["hosted_zone_id"],
            name=option.apply(lambda o: o["name"]),
            type=option.apply(lambda o: o["type"]),
            records=[option.apply(lambda o: o["value"])],
            ttl=60,
            allow_overwrite=True,  # ACM reuses the same record name for a re-issued certificate
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        # Through the validation: whoever uses the ARN waits until the certificate is issued.
        return validation.certificate_arn

    def _ingress_nginx(self, name: str, args: ClusterIngressArgs, lbc: k8s.helm.v3.Release) -> None:
        self._release(
            f"{name}-ingress-nginx",
            INGRESS_NGINX,
            args["controller_namespace"],
            {
                "controller": {
                    "replicaCount": 2,
                    "ingressClass": "nginx",
                    "ingressClassResource": {"name": "nginx", "enabled": True, "default": False},
                    "allowSnippetAnnotations": False,  # CVE-2021-25742 class of config injection
                    "publishService": {"enabled": True},  # the NLB's name lands in Ingress status
                    "service": {
                        # Reconciled by the AWS Load Balancer Controller, not the in-tree controller.
                        "loadBalancerClass": LOAD_BALANCER_CLASS,
                        "annotations": self._nlb_annotations(args),
                    },
                }
            },
            # The controller (and its webhook) must be up before the Service it reconciles exists.
            depends_on=[lbc],
        )

    def _nlb_annotations(self, args: ClusterIngressArgs) -> dict[str, pulumi.Input[str]]:
        annotations: dict[str, pulumi.Input[str]] = dict(nlb_service_annotations(args["scheme"]))
        subnet_ids = args.get("load_balancer_subnet_ids", ())
        if subnet_ids:
            annotations[f"{NLB_ANNOTATION_PREFIX}aws-load-balancer-subnets"] = pulumi.Output.all(*subnet_ids).apply(
                ",".join
            )
        return annotations

    def _cert_manager(self, name: str, args: ClusterIngressArgs) -> None:
        namespace, service_account = CERT_MANAGER_SERVICE_ACCOUNT
        irsa = self._irsa_role(
            f"{name}-cert-manager",
            args,
            CERT_MANAGER_SERVICE_ACCOUNT,
            pulumi.Output.json_dumps(
                self.partition.apply(lambda p: cert_manager_policy(p, args["hosted_zone_id"], args["host"]))
            ),
        )
        self.cert_manager_role = irsa.role
        release = self._release(
            f"{name}-cert-manager",
            CERT_MANAGER,
            namespace,
            {
                "crds": {"enabled": True, "keep": True},
                "serviceAccount": {
                    "create": True,
                    "name": service_account,
                    "annotations": {"eks.amazonaws.com/role-arn": self.cert_manager_role.arn},
                },
            },
            depends_on=irsa.grants,
        )
        issuer = args.get("cert_manager_issuer") or "letsencrypt"
        self.cluster_issuer = k8s.apiextensions.CustomResource(
            f"{name}-cluster-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": issuer},
            spec={
                "acme": {
                    "server": args.get("acme_server", "https://acme-v02.api.letsencrypt.org/directory"),
                    "email": args.get("acme_email", ""),
                    "privateKeySecretRef": {"name": f"{issuer}-account-key"},
                    "solvers": [
                        {
                            "selector": {"dnsNames": [args["host"]]},
                            "dns01": {"route53": {"region": args["region"], "hostedZoneID": args["hosted_zone_id"]}},
                        }
                    ],
                }
            },
            # The CRDs come with the release.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
        )


def _first_validation_option(options: Any) -> dict[str, str]:
    for option in options or []:
        if option.resource_record_name and option.resource_record_type and option.resource_record_value:
            return {
                "name": option.resource_record_name,
                "type": option.resource_record_type,
                "value": option.resource_record_value,
            }
    raise ValueError("ACM returned no DNS validation record for the tracking host's certificate")


def load_balancer_hostname(status: Any) -> str:
    """The load balancer's DNS name from an Ingress's ``status`` (set by the controller)."""
    entries = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    for entry in entries:
        if getattr(entry, "hostname", None):
            return entry.hostname
    raise ValueError("the tracking server's Ingress has no load balancer hostname in its status yet")


class TrackingHostRecordArgs(TypedDict):
    hosted_zone_id: str
    host: str
    load_balancer_hostname: pulumi.Input[str]
    ttl: NotRequired[int]


class TrackingHostRecord(pulumi.ComponentResource):
    """``<host> CNAME <load balancer>`` in the stack's hosted zone (the host must be below the
    zone's apex: a CNAME cannot sit at the apex)."""

    fqdn: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingHostRecordArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrackingHostRecord", name, {}, opts)
        self.record = aws.route53.Record(
            f"{name}-cname",
            zone_id=args["hosted_zone_id"],
            name=args["host"],
            type="CNAME",
            ttl=args.get("ttl", 300),
            records=[args["load_balancer_hostname"]],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.fqdn = self.record.fqdn
        self.register_outputs({"fqdn": self.fqdn})
