"""The work machines' identity: an IAM role only EC2 may assume, and its instance profile.

It carries no permission lit needs (lit moves files with presigned URLs); only the policies the user names
(`lit:workPolicyArns`), e.g. to read their datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

EC2_TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


@dataclass
class IdentityArgs:
    policy_arns: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class Identity(pulumi.ComponentResource):
    def __init__(self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:cluster:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(f"{name}-work", path="/lit/", assume_role_policy=EC2_TRUST,
                                 description="lit work machines (no lit permissions)", tags=args.tags, opts=child)
        for index, arn in enumerate(args.policy_arns):
            aws.iam.RolePolicyAttachment(f"{name}-work-{index}", role=self.role.name, policy_arn=arn, opts=child)
        self.profile = aws.iam.InstanceProfile(f"{name}-work", path="/lit/", role=self.role.name, tags=args.tags,
                                               opts=child)
        self.register_outputs({"role_arn": self.role.arn, "instance_profile_arn": self.profile.arn})
