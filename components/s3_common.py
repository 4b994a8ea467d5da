"""What every bucket of the artifact store shares: the TLS-only statement, the whole-bucket
lifecycle filter, and the serialisation of a new bucket's configuration calls."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def tls_only_statement(bucket_arn: pulumi.Input[str]) -> dict[str, object]:
    """Deny any request not made over TLS, on the bucket and its objects (S3.5 / CKV_AWS_379)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


EVERY_OBJECT: aws.s3.BucketLifecycleConfigurationRuleFilterArgsDict = {"prefix": ""}
"""A lifecycle rule's filter for the whole bucket. An empty ``filter {}`` draws the provider's
"Invalid Attribute Combination … This will be an error in a future version of the provider"
warning (hashicorp/terraform-provider-aws#42515, #42089); an empty prefix is the same scope."""


def after(*resources: pulumi.Resource) -> pulumi.ResourceOptions:
    """Child options that wait for ``resources``: a bucket's sub-resources are created one after
    another. S3 answers "OperationAborted: A conflicting conditional operation is currently in
    progress against this resource" when configuration calls on one new bucket overlap (S3 API
    reference, Error codes: OperationAborted, 409), and the provider retries only some of them.
    The order puts the public access block first, so the bucket policy (last) is never written
    to a bucket that is not yet blocked."""
    return pulumi.ResourceOptions(depends_on=list(resources))
