"""The cluster's security group: SSH only from the operator's address, all traffic inside the group."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


def check_ssh_cidr(cidr: str) -> str:
    """The CIDR SSH may come from; never the whole internet."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.prefixlen == 0:
        raise ValueError(f"lit:sshCidr {cidr} would open SSH to the whole internet; give your address/32")
    return str(network)


@dataclass
class SecurityArgs:
    vpc_id: pulumi.Input[str]
    ssh_cidr: str
    tags: dict[str, str] = field(default_factory=dict)


class Security(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecurityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:cluster:Security", name, None, opts)
        cidr = check_ssh_cidr(args.ssh_cidr)
        # EC2 takes IPv4 ranges in cidr_blocks and IPv6 ranges in ipv6_cidr_blocks.
        source = {"ipv6_cidr_blocks": [cidr]} if ipaddress.ip_network(cidr).version == 6 else {"cidr_blocks": [cidr]}
        self.group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="lit work machines: SSH from the operator only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=22, to_port=22,
                                                 description="SSH from the operator", **source),
                aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True,
                                                 description="all traffic between the cluster's machines"),
            ],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                    description="out: packages, datasets, presigned S3")],
            tags={**args.tags, "Name": f"{name}-sg"}, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"security_group_id": self.group.id})
