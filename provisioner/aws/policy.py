"""The permissions policy of the customer's role, derived from what is called with that role.

Two tables say who calls what, kept in step with their sources by hand:

- STACK: for every resource type the cluster stack declares (stacks/*.py), the AWS API calls the Pulumi AWS
  provider (pulumi-aws v7, i.e. terraform-provider-aws v6) makes to create, read, update and delete it, for the
  arguments lit gives. Read from terraform-provider-aws's internal/service/ files: ec2/vpc_.go (read:
  DescribeVpcAttribute x3, the default network ACL, main route table and default security group),
  ec2/vpc_internet_gateway.go, ec2/vpc_route_table.go, ec2/vpc_route_table_association.go, ec2/vpc_subnet.go and
  ec2/vpc_security_group.go (their deletes look for lingering ENIs: ec2/vpc_network_interface.go
  deleteLingeringENIs), iam/role.go (read: GetRole, ListRolePolicies, ListAttachedRolePolicies; delete:
  ListInstanceProfilesForRole, RemoveRoleFromInstanceProfile), iam/role_policy_attachment.go,
  iam/instance_profile.go (read: GetInstanceProfile, then GetRole of its role), s3/bucket.go (read: HeadBucket,
  then GetBucketPolicy, Acl, Cors, Website, Versioning, AccelerateConfiguration, RequestPayment, Logging,
  LifecycleConfiguration, Replication, Encryption, ObjectLockConfiguration, the region (HeadBucket) and
  Tagging), s3/bucket_server_side_encryption_configuration.go, s3/bucket_public_access_block.go,
  s3/bucket_ownership_controls.go.
- LIT: the calls lit itself makes with the role (provisioner/aws/cluster.py, provider.py, session.py and
  provisioner/launcher.py; presigned URLs are calls made later by the machines, with the role's signature).

API maps each call to the IAM actions it needs and what they act on. The names differ from the API's where
IAM says so, mostly in S3 (GetBucketReplication needs s3:GetReplicationConfiguration, ListObjectsV2 and
HeadBucket need s3:ListBucket, DeleteObjects needs s3:DeleteObject per key); a create that tags needs the tagging
action too, and what hands the work role to EC2 needs iam:PassRole. `permissions_policy()` groups the actions by
what they act on into statements scoped as tightly as IAM allows: lit-* buckets, roles and instance profiles under
the /lit/ path, instances tagged lit:cluster; the EC2 network calls (most allow no resource-level scoping) on "*".
"""

from __future__ import annotations

import re
from typing import Any, Optional

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

# What an action acts on (the statement it lands in).
ANYWHERE = "anywhere"
LIT_INSTANCES = "lit-instances"
WORK_ROLE = "work-role"
WORK_PROFILE = "work-profile"
BUCKET = "bucket"
OBJECTS = "objects"

Permission = tuple[str, str]  # (IAM action, scope)


def _own(call: str, scope: str = ANYWHERE, *extra: Permission) -> tuple[Permission, ...]:
    """A call whose IAM action has the call's own name."""
    return ((call, scope), *extra)


TAG_ON_CREATE = ("ec2:CreateTags", ANYWHERE)  # EC2 creates with TagSpecifications need ec2:CreateTags too

# API call -> the IAM permissions it needs.
API: dict[str, tuple[Permission, ...]] = {
    # STS and Service Quotas
    "sts:GetCallerIdentity": _own("sts:GetCallerIdentity"),
    "servicequotas:GetServiceQuota": _own("servicequotas:GetServiceQuota"),
    # EC2: reading
    "ec2:DescribeAvailabilityZones": _own("ec2:DescribeAvailabilityZones"),
    "ec2:DescribeVpcs": _own("ec2:DescribeVpcs"),
    "ec2:DescribeVpcAttribute": _own("ec2:DescribeVpcAttribute"),
    "ec2:DescribeNetworkAcls": _own("ec2:DescribeNetworkAcls"),
    "ec2:DescribeRouteTables": _own("ec2:DescribeRouteTables"),
    "ec2:DescribeSecurityGroups": _own("ec2:DescribeSecurityGroups"),
    "ec2:DescribeInternetGateways": _own("ec2:DescribeInternetGateways"),
    "ec2:DescribeSubnets": _own("ec2:DescribeSubnets"),
    "ec2:DescribeNetworkInterfaces": _own("ec2:DescribeNetworkInterfaces"),
    "ec2:DescribeInstances": _own("ec2:DescribeInstances"),
    "ec2:DescribeImages": _own("ec2:DescribeImages"),
    # EC2: the network
    "ec2:CreateVpc": _own("ec2:CreateVpc", ANYWHERE, TAG_ON_CREATE),
    "ec2:ModifyVpcAttribute": _own("ec2:ModifyVpcAttribute"),
    "ec2:DeleteVpc": _own("ec2:DeleteVpc"),
    "ec2:CreateInternetGateway": _own("ec2:CreateInternetGateway", ANYWHERE, TAG_ON_CREATE),
    "ec2:AttachInternetGateway": _own("ec2:AttachInternetGateway"),
    "ec2:DetachInternetGateway": _own("ec2:DetachInternetGateway"),
    "ec2:DeleteInternetGateway": _own("ec2:DeleteInternetGateway"),
    "ec2:CreateRouteTable": _own("ec2:CreateRouteTable", ANYWHERE, TAG_ON_CREATE),
    "ec2:CreateRoute": _own("ec2:CreateRoute"),
    "ec2:ReplaceRoute": _own("ec2:ReplaceRoute"),
    "ec2:DeleteRoute": _own("ec2:DeleteRoute"),
    "ec2:DeleteRouteTable": _own("ec2:DeleteRouteTable"),
    "ec2:AssociateRouteTable": _own("ec2:AssociateRouteTable"),
    "ec2:ReplaceRouteTableAssociation": _own("ec2:ReplaceRouteTableAssociation"),
    "ec2:DisassociateRouteTable": _own("ec2:DisassociateRouteTable"),
    "ec2:CreateSubnet": _own("ec2:CreateSubnet", ANYWHERE, TAG_ON_CREATE),
    "ec2:ModifySubnetAttribute": _own("ec2:ModifySubnetAttribute"),
    "ec2:DeleteSubnet": _own("ec2:DeleteSubnet"),
    "ec2:CreateSecurityGroup": _own("ec2:CreateSecurityGroup", ANYWHERE, TAG_ON_CREATE),
    "ec2:AuthorizeSecurityGroupIngress": _own("ec2:AuthorizeSecurityGroupIngress"),
    "ec2:AuthorizeSecurityGroupEgress": _own("ec2:AuthorizeSecurityGroupEgress"),
    "ec2:RevokeSecurityGroupIngress": _own("ec2:RevokeSecurityGroupIngress"),
    "ec2:RevokeSecurityGroupEgress": _own("ec2:RevokeSecurityGroupEgress"),
    "ec2:DeleteSecurityGroup": _own("ec2:DeleteSecurityGroup"),
    "ec2:CreateTags": _own("ec2:CreateTags"),
    "ec2:DeleteTags": _own("ec2:DeleteTags"),
    # EC2: instances (launching hands the work role to EC2 through the cluster's instance profile)
    "ec2:RunInstances": _own("ec2:RunInstances", ANYWHERE, TAG_ON_CREATE, ("iam:PassRole", WORK_ROLE)),
    "ec2:StartInstances": _own("ec2:StartInstances", LIT_INSTANCES),
    "ec2:StopInstances": _own("ec2:StopInstances", LIT_INSTANCES),
    "ec2:TerminateInstances": _own("ec2:TerminateInstances", LIT_INSTANCES),
    # IAM: the work role (tagging on create needs the tagging action too)
    "iam:CreateRole": _own("iam:CreateRole", WORK_ROLE, ("iam:TagRole", WORK_ROLE)),
    "iam:GetRole": _own("iam:GetRole", WORK_ROLE),
    "iam:ListRolePolicies": _own("iam:ListRolePolicies", WORK_ROLE),
    "iam:ListAttachedRolePolicies": _own("iam:ListAttachedRolePolicies", WORK_ROLE),
    "iam:ListInstanceProfilesForRole": _own("iam:ListInstanceProfilesForRole", WORK_ROLE),
    "iam:UpdateAssumeRolePolicy": _own("iam:UpdateAssumeRolePolicy", WORK_ROLE),
    "iam:UpdateRoleDescription": _own("iam:UpdateRoleDescription", WORK_ROLE),
    "iam:UpdateRole": _own("iam:UpdateRole", WORK_ROLE),
    "iam:TagRole": _own("iam:TagRole", WORK_ROLE),
    "iam:UntagRole": _own("iam:UntagRole", WORK_ROLE),
    "iam:AttachRolePolicy": _own("iam:AttachRolePolicy", WORK_ROLE),
    "iam:DetachRolePolicy": _own("iam:DetachRolePolicy", WORK_ROLE),
    "iam:DeleteRole": _own("iam:DeleteRole", WORK_ROLE),
    # IAM: its instance profile (adding the role to it passes the role)
    "iam:CreateInstanceProfile": _own("iam:CreateInstanceProfile", WORK_PROFILE, ("iam:TagInstanceProfile",
                                                                                   WORK_PROFILE)),
    "iam:GetInstanceProfile": _own("iam:GetInstanceProfile", WORK_PROFILE),
    "iam:AddRoleToInstanceProfile": _own("iam:AddRoleToInstanceProfile", WORK_PROFILE, ("iam:PassRole", WORK_ROLE)),
    "iam:RemoveRoleFromInstanceProfile": _own("iam:RemoveRoleFromInstanceProfile", WORK_PROFILE),
    "iam:TagInstanceProfile": _own("iam:TagInstanceProfile", WORK_PROFILE),
    "iam:UntagInstanceProfile": _own("iam:UntagInstanceProfile", WORK_PROFILE),
    "iam:DeleteInstanceProfile": _own("iam:DeleteInstanceProfile", WORK_PROFILE),
    # S3: the bucket
    "s3:CreateBucket": _own("s3:CreateBucket", BUCKET),
    "s3:HeadBucket": (("s3:ListBucket", BUCKET),),
    "s3:DeleteBucket": _own("s3:DeleteBucket", BUCKET),
    "s3:GetBucketPolicy": _own("s3:GetBucketPolicy", BUCKET),
    "s3:GetBucketAcl": _own("s3:GetBucketAcl", BUCKET),
    "s3:GetBucketCors": (("s3:GetBucketCORS", BUCKET),),
    "s3:GetBucketWebsite": _own("s3:GetBucketWebsite", BUCKET),
    "s3:GetBucketVersioning": _own("s3:GetBucketVersioning", BUCKET),
    "s3:GetBucketAccelerateConfiguration": (("s3:GetAccelerateConfiguration", BUCKET),),
    "s3:GetBucketRequestPayment": _own("s3:GetBucketRequestPayment", BUCKET),
    "s3:GetBucketLogging": _own("s3:GetBucketLogging", BUCKET),
    "s3:GetBucketLifecycleConfiguration": (("s3:GetLifecycleConfiguration", BUCKET),),
    "s3:GetBucketReplication": (("s3:GetReplicationConfiguration", BUCKET),),
    "s3:GetBucketEncryption": (("s3:GetEncryptionConfiguration", BUCKET),),
    "s3:PutBucketEncryption": (("s3:PutEncryptionConfiguration", BUCKET),),
    "s3:DeleteBucketEncryption": (("s3:PutEncryptionConfiguration", BUCKET),),
    "s3:GetObjectLockConfiguration": (("s3:GetBucketObjectLockConfiguration", BUCKET),),
    "s3:GetBucketTagging": _own("s3:GetBucketTagging", BUCKET),
    "s3:PutBucketTagging": _own("s3:PutBucketTagging", BUCKET),
    "s3:DeleteBucketTagging": (("s3:PutBucketTagging", BUCKET),),
    "s3:GetPublicAccessBlock": (("s3:GetBucketPublicAccessBlock", BUCKET),),
    "s3:PutPublicAccessBlock": (("s3:PutBucketPublicAccessBlock", BUCKET),),
    "s3:DeletePublicAccessBlock": (("s3:PutBucketPublicAccessBlock", BUCKET),),
    "s3:GetBucketOwnershipControls": _own("s3:GetBucketOwnershipControls", BUCKET),
    "s3:PutBucketOwnershipControls": _own("s3:PutBucketOwnershipControls", BUCKET),
    "s3:DeleteBucketOwnershipControls": (("s3:PutBucketOwnershipControls", BUCKET),),
    "s3:ListObjectsV2": (("s3:ListBucket", BUCKET),),
    "s3:ListObjectVersions": (("s3:ListBucketVersions", BUCKET),),
    # S3: objects (DeleteObjects is authorized per key; with version ids it deletes versions)
    "s3:GetObject": _own("s3:GetObject", OBJECTS),
    "s3:HeadObject": (("s3:GetObject", OBJECTS),),
    "s3:PutObject": _own("s3:PutObject", OBJECTS),
    "s3:DeleteObject": _own("s3:DeleteObject", OBJECTS),
    "s3:DeleteObjects": (("s3:DeleteObject", OBJECTS), ("s3:DeleteObjectVersion", OBJECTS)),
}

_TAGS = ("ec2:CreateTags", "ec2:DeleteTags")

# Stack resource type -> {create|read|update|delete: the API calls the provider makes}. Updates list what a
# change of lit's inputs (or of the cluster tag) leads to; the bucket and its settings are retained on destroy,
# so Pulumi never deletes them: lit deletes the bucket itself (LIT below).
STACK: dict[str, dict[str, tuple[str, ...]]] = {
    "pulumi:providers:aws": {"create": ("sts:GetCallerIdentity",), "read": ("sts:GetCallerIdentity",)},
    "aws:index/getAvailabilityZones:getAvailabilityZones": {"read": ("ec2:DescribeAvailabilityZones",)},
    "aws:ec2/vpc:Vpc": {
        "create": ("ec2:CreateVpc", "ec2:DescribeVpcs", "ec2:ModifyVpcAttribute", "ec2:DescribeVpcAttribute"),
        "read": ("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeNetworkAcls",
                 "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups"),
        "update": ("ec2:ModifyVpcAttribute", "ec2:DescribeVpcAttribute", *_TAGS),
        "delete": ("ec2:DeleteVpc", "ec2:DescribeVpcs")},
    "aws:ec2/internetGateway:InternetGateway": {
        "create": ("ec2:CreateInternetGateway", "ec2:DescribeInternetGateways", "ec2:AttachInternetGateway"),
        "read": ("ec2:DescribeInternetGateways",),
        "update": ("ec2:AttachInternetGateway", "ec2:DetachInternetGateway", *_TAGS),
        "delete": ("ec2:DetachInternetGateway", "ec2:DeleteInternetGateway", "ec2:DescribeInternetGateways")},
    "aws:ec2/routeTable:RouteTable": {
        "create": ("ec2:CreateRouteTable", "ec2:DescribeRouteTables", "ec2:CreateRoute"),
        "read": ("ec2:DescribeRouteTables",),
        "update": ("ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute", *_TAGS),
        "delete": ("ec2:DisassociateRouteTable", "ec2:DeleteRouteTable", "ec2:DescribeRouteTables")},
    "aws:ec2/subnet:Subnet": {
        "create": ("ec2:CreateSubnet", "ec2:DescribeSubnets", "ec2:ModifySubnetAttribute"),
        "read": ("ec2:DescribeSubnets",),
        "update": ("ec2:ModifySubnetAttribute", *_TAGS),
        "delete": ("ec2:DescribeNetworkInterfaces", "ec2:DeleteSubnet", "ec2:DescribeSubnets")},
    "aws:ec2/routeTableAssociation:RouteTableAssociation": {
        "create": ("ec2:AssociateRouteTable", "ec2:DescribeRouteTables"),
        "read": ("ec2:DescribeRouteTables",),
        "update": ("ec2:ReplaceRouteTableAssociation",),
        "delete": ("ec2:DisassociateRouteTable", "ec2:DescribeRouteTables")},
    "aws:ec2/securityGroup:SecurityGroup": {
        # Create revokes the default allow-all egress rule, then authorizes the declared rules.
        "create": ("ec2:CreateSecurityGroup", "ec2:DescribeSecurityGroups", "ec2:RevokeSecurityGroupEgress",
                   "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress"),
        "read": ("ec2:DescribeSecurityGroups",),
        "update": ("ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                   "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", *_TAGS),
        "delete": ("ec2:DescribeNetworkInterfaces", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups")},
    "aws:iam/role:Role": {
        "create": ("iam:CreateRole", "iam:GetRole"),
        "read": ("iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"),
        "update": ("iam:UpdateAssumeRolePolicy", "iam:UpdateRoleDescription", "iam:UpdateRole", "iam:TagRole",
                   "iam:UntagRole"),
        "delete": ("iam:ListInstanceProfilesForRole", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteRole")},
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {
        "create": ("iam:AttachRolePolicy", "iam:ListAttachedRolePolicies"),
        "read": ("iam:ListAttachedRolePolicies",),
        "delete": ("iam:DetachRolePolicy",)},
    "aws:iam/instanceProfile:InstanceProfile": {
        "create": ("iam:CreateInstanceProfile", "iam:GetInstanceProfile", "iam:AddRoleToInstanceProfile"),
        "read": ("iam:GetInstanceProfile", "iam:GetRole"),
        "update": ("iam:RemoveRoleFromInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:TagInstanceProfile",
                   "iam:UntagInstanceProfile"),
        "delete": ("iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile")},
    "aws:s3/bucket:Bucket": {
        "create": ("s3:CreateBucket", "s3:HeadBucket", "s3:GetBucketTagging", "s3:PutBucketTagging"),
        "read": ("s3:HeadBucket", "s3:GetBucketPolicy", "s3:GetBucketAcl", "s3:GetBucketCors",
                 "s3:GetBucketWebsite", "s3:GetBucketVersioning", "s3:GetBucketAccelerateConfiguration",
                 "s3:GetBucketRequestPayment", "s3:GetBucketLogging", "s3:GetBucketLifecycleConfiguration",
                 "s3:GetBucketReplication", "s3:GetBucketEncryption", "s3:GetObjectLockConfiguration",
                 "s3:GetBucketTagging"),
        "update": ("s3:GetBucketTagging", "s3:PutBucketTagging", "s3:DeleteBucketTagging"),
        "delete": ("s3:DeleteBucket",)},
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {
        "create": ("s3:PutBucketEncryption", "s3:GetBucketEncryption"),
        "read": ("s3:GetBucketEncryption",),
        "update": ("s3:PutBucketEncryption",),
        "delete": ("s3:DeleteBucketEncryption",)},
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": {
        "create": ("s3:PutPublicAccessBlock", "s3:GetPublicAccessBlock"),
        "read": ("s3:GetPublicAccessBlock",),
        "update": ("s3:PutPublicAccessBlock",),
        "delete": ("s3:DeletePublicAccessBlock",)},
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": {
        "create": ("s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls"),
        "read": ("s3:GetBucketOwnershipControls",),
        "update": ("s3:PutBucketOwnershipControls",),
        "delete": ("s3:DeleteBucketOwnershipControls",)},
}

# What lit itself does with the role -> the API calls (waiters poll DescribeInstances).
LIT: dict[str, tuple[str, ...]] = {
    "check the role (create cluster)": ("sts:GetCallerIdentity",),
    "find a cluster's instances (delete cluster, list)": ("ec2:DescribeInstances",),
    "terminate them (delete cluster, end of a run)": ("ec2:TerminateInstances", "ec2:DescribeInstances"),
    "delete the bucket (delete cluster)": ("s3:ListObjectsV2", "s3:ListObjectVersions", "s3:DeleteObjects",
                                           "s3:DeleteBucket"),
    "find the image": ("ec2:DescribeImages",),
    "check the GPU quota": ("servicequotas:GetServiceQuota",),
    "launch an instance": ("ec2:DescribeSubnets", "ec2:RunInstances", "ec2:DescribeInstances"),
    "start a work's stopped instance": ("ec2:DescribeInstances", "ec2:StartInstances"),
    "stop an instance": ("ec2:StopInstances",),
    "files: presigned URLs to put and get": ("s3:PutObject", "s3:GetObject"),
    "files: list and delete": ("s3:ListObjectsV2", "s3:HeadObject", "s3:DeleteObject"),
}

_SIDS = {ANYWHERE: "NetworkAndLaunch", LIT_INSTANCES: "OnlyLitInstances", WORK_ROLE: "WorkRole",
         WORK_PROFILE: "WorkInstanceProfile", BUCKET: "Bucket", OBJECTS: "BucketObjects"}


def check_partition(partition: str) -> str:
    if partition not in PARTITIONS:
        raise ValueError(f"unknown AWS partition {partition!r}; one of {', '.join(PARTITIONS)}")
    return partition


def resources(scope: str, partition: str = "aws") -> list[str]:
    """The resources a scope's statement names, in the role's partition."""
    p = check_partition(partition)
    return {ANYWHERE: ["*"], LIT_INSTANCES: [f"arn:{p}:ec2:*:*:instance/*"],
            WORK_ROLE: [f"arn:{p}:iam::*:role/lit/*"], WORK_PROFILE: [f"arn:{p}:iam::*:instance-profile/lit/*"],
            BUCKET: [f"arn:{p}:s3:::lit-*"], OBJECTS: [f"arn:{p}:s3:::lit-*/*"]}[scope]


def calls() -> set[str]:
    """Every API call in the tables."""
    return {c for ops in STACK.values() for cs in ops.values() for c in cs} | {c for cs in LIT.values() for c in cs}


def permissions() -> dict[str, set[str]]:
    """scope -> the IAM actions the tables' calls need there."""
    out: dict[str, set[str]] = {}
    for call in sorted(calls()):
        if call not in API:
            raise KeyError(f"{call} is in the call tables but not in API (policy.py): say which IAM actions it needs")
        for action, scope in API[call]:
            out.setdefault(scope, set()).add(action)
    return out


def permissions_policy(partition: str = "aws") -> dict[str, Any]:
    """The role's permissions policy: one statement per scope, each action in the statement of what it acts on."""
    needed = permissions()
    statements = []
    for scope in (ANYWHERE, LIT_INSTANCES, WORK_ROLE, WORK_PROFILE, BUCKET, OBJECTS):
        if scope not in needed:
            continue
        named = resources(scope, partition)
        statement: dict[str, Any] = {"Sid": _SIDS[scope], "Effect": "Allow", "Action": sorted(needed[scope]),
                                     "Resource": "*" if named == ["*"] else named}
        if scope == LIT_INSTANCES:  # only instances lit tagged for a cluster
            statement["Condition"] = {"StringLike": {"aws:ResourceTag/lit:cluster": "*"}}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def trust_policy(external_id: Optional[str], operator_account: Optional[str], partition: str = "aws") -> dict[str, Any]:
    """Who may assume the role: the operator's account (with the external ID, when there is one)."""
    principal = f"arn:{check_partition(partition)}:iam::{operator_account or '<YOUR-ACCOUNT-ID>'}:root"
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


# --------------------------------------------------------------------------------------------------------------
# IAM's matching rules, to check a policy against the tables.
# --------------------------------------------------------------------------------------------------------------
def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    """IAM wildcards: `*` any run of characters (also none), `?` exactly one; everything else literally."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action element's entry covers `action`: case-insensitive, `*` and `?` wildcards, the service
    prefix part of the name ("s3:Get*" covers no ec2 action; "*" covers every action)."""
    return _wildcard(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str) -> bool:
    """Whether a Resource element's entry covers an ARN: case-sensitive, `*` and `?` wildcards."""
    return _wildcard(pattern, resource, ignore_case=False)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def allows(policy: dict[str, Any], action: str, resource: str = "*") -> bool:
    """Whether the identity policy allows `action` on `resource` (an ARN; "*" for calls on no resource): an Allow
    statement covers both and no Deny does. Conditions are not evaluated (a conditional Allow counts)."""
    allowed = False
    for statement in _listed_statements(policy):
        if "NotAction" in statement:
            hit = not any(action_matches(p, action) for p in _listed(statement["NotAction"]))
        else:
            hit = any(action_matches(p, action) for p in _listed(statement.get("Action")))
        if not hit:
            continue
        if "NotResource" in statement:
            hit = not any(resource_matches(p, resource) for p in _listed(statement["NotResource"]))
        else:
            hit = any(resource_matches(p, resource) for p in _listed(statement.get("Resource")))
        if not hit:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def _listed_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)
