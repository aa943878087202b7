"""The cluster's network: a VPC, a public subnet in each of two or more AZs, an internet gateway, routes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass
class NetworkArgs:
    cidr: str
    azs: list[str]
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:cluster:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True,
                               enable_dns_support=True, tags={**args.tags, "Name": f"{name}-vpc"}, opts=child)
        self.gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id,
                                               tags={**args.tags, "Name": f"{name}-igw"}, opts=child)
        self.routes = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=self.gateway.id)],
            tags={**args.tags, "Name": f"{name}-public"}, opts=child)
        self.subnets: list[aws.ec2.Subnet] = []
        for index, az in enumerate(args.azs):
            # /20s carved from the VPC's /16: 10.x.0.0/20, 10.x.16.0/20, ...
            base = args.cidr.split("/")[0].split(".")
            cidr = f"{base[0]}.{base[1]}.{index * 16}.0/20"
            subnet = aws.ec2.Subnet(f"{name}-public-{index}", vpc_id=self.vpc.id, cidr_block=cidr,
                                    availability_zone=az, map_public_ip_on_launch=True,
                                    tags={**args.tags, "Name": f"{name}-public-{az}"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{index}", subnet_id=subnet.id,
                                          route_table_id=self.routes.id, opts=child)
            self.subnets.append(subnet)
        self.register_outputs({"vpc_id": self.vpc.id, "subnet_ids": [s.id for s in self.subnets]})
