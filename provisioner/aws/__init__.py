"""The aws provider: clusters in the customer's own AWS account (a Pulumi stack), an EC2 machine per work."""

from __future__ import annotations

from ..base import Option, ProviderInfo

INFO = ProviderInfo(
    name="aws",
    summary="EC2 machines in your own AWS account, through an IAM role lit assumes",
    factory="lit.provisioner.aws.provider:AWSProvider",
    create_options=(
        Option("--role-arn", "the IAM role in your account that lit assumes."),
        Option("--external-id", "the external ID the role's trust policy requires."),
        Option("--region", "the region (default $AWS_REGION or us-east-1)."),
        Option("--ssh-cidr", "who may SSH to work machines (default: your address/32)."),
        Option("--work-policy-arn", "an IAM policy for the work machines' role (e.g. to read your datasets).",
               multiple=True, metavar="ARN"),
    ),
    update_options=(
        Option("--ssh-cidr", "who may SSH to work machines (default: your address/32 now)."),
    ),
    delete_options=(
        Option("--delete-data", "also delete the cluster's bucket when it holds data.", is_flag=True),
    ),
    policy_options=(
        Option("--external-id", "require this external ID in the trust policy."),
        Option("--account", "the AWS account lit runs from (default: the one you are logged in to)."),
        Option("--role-arn", "the role's ARN, if known: its partition (aws, aws-cn, aws-us-gov) goes into the "
               "policies' ARNs (default: your login's partition, else aws)."),
    ),
)
