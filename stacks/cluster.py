"""A lit cluster in the customer's AWS account: network, security, identity and storage, every resource
made through one provider that assumes the customer's role, and tagged `lit:cluster=<name>`.

`program()` is the Pulumi program: `pulumi up` runs it through stacks/__main__.py (Pulumi.yaml: main:
stacks/), and `lit create cluster` runs it inline through the Automation API.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from . import VPC_CIDR
from .identity import Identity, IdentityArgs
from .network import Network, NetworkArgs
from .security import Security, SecurityArgs
from .storage import Storage, StorageArgs

MIN_AZS = 2
MAX_AZS = 3


def program() -> None:
    config = pulumi.Config("lit")
    name = config.require("clusterName")
    role_arn = config.require("roleArn")
    external_id = config.get("externalId") or None
    ssh_cidr = config.require("sshCidr")
    policy_arns = json.loads(config.get("workPolicyArns") or "[]")
    bucket_name = config.get("bucketName") or None  # lit names it; else lit-<cluster>- and a random suffix
    region = pulumi.Config("aws").require("region")
    tags = {"lit:cluster": name}

    provider = aws.Provider(
        f"{name}-customer", region=region,
        assume_roles=[aws.ProviderAssumeRoleArgs(role_arn=role_arn, external_id=external_id,
                                                 session_name=f"lit-{name}"[:64])],
        default_tags=aws.ProviderDefaultTagsArgs(tags=tags),
    )
    opts = pulumi.ResourceOptions(provider=provider)
    # Only zones of type availability-zone: an account's opted-in Local Zones (us-east-1-bos-1a, ...) are
    # "available" too, sort before the region's own zones and lack most instance types (EC2 API reference,
    # DescribeAvailabilityZones: the zone-type filter).
    zones = aws.get_availability_zones(
        state="available", filters=[aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])],
        opts=pulumi.InvokeOptions(provider=provider))
    azs = sorted(zones.names)[:MAX_AZS]
    if len(azs) < MIN_AZS:
        raise ValueError(f"region {region} offers {len(azs)} availability zones; a lit cluster needs {MIN_AZS}")

    network = Network(name, NetworkArgs(VPC_CIDR, azs, tags), opts)
    security = Security(name, SecurityArgs(network.vpc.id, ssh_cidr, tags), opts)
    identity = Identity(name, IdentityArgs(policy_arns, tags), opts)
    storage = Storage(name, StorageArgs(tags, bucket_name), opts)

    pulumi.export("cluster_name", name)
    pulumi.export("region", region)
    pulumi.export("availability_zones", azs)
    pulumi.export("vpc_id", network.vpc.id)
    pulumi.export("subnet_ids", [subnet.id for subnet in network.subnets])
    pulumi.export("security_group_id", security.group.id)
    pulumi.export("work_role_arn", identity.role.arn)
    pulumi.export("instance_profile_name", identity.profile.name)
    pulumi.export("instance_profile_arn", identity.profile.arn)
    pulumi.export("bucket", storage.bucket.id)
