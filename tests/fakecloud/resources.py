"""What each Pulumi resource type of the cluster stack does in moto: ensure (create or adopt) and delete.

A handler's `ensure(ctx, inputs, rec)` is idempotent: with a record of an earlier run it finds the resource by
its recorded id (or, for a create that was interrupted, by the name or tags it was given) and brings it to the
inputs; otherwise it creates it. It returns (physical id, state) where state is what the real provider would
report (inputs plus computed outputs: id, arn, name, ...), keyed by Pulumi's camelCase property names.
`delete(ctx, rec)` removes it and tolerates it being gone already.

`rec` is the resource's record in the stack's state file; handlers keep what they need in `rec["data"]` and call
`ctx.checkpoint()` before a create, so a generated name survives an interruption.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from typing import Any, Optional

from .aws import Endpoint


class Context:
    """One provider's view of moto: clients of its assumed-role session, its region, account and default tags."""

    def __init__(self, endpoint: Endpoint, account: str, default_tags: dict[str, str],
                 checkpoint: Callable[[], None] = lambda: None) -> None:
        self.aws = endpoint
        self.region = endpoint.region
        self.account = account
        self.default_tags = default_tags
        self.checkpoint = checkpoint

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    def tags_all(self, inputs: dict[str, Any]) -> dict[str, str]:
        return {**self.default_tags, **(inputs.get("tags") or {})}


Ensure = Callable[[Context, dict[str, Any], dict[str, Any]], "tuple[str, dict[str, Any]]"]
Delete = Callable[[Context, dict[str, Any]], None]
HANDLERS: dict[str, tuple[Ensure, Delete]] = {}


def handler(*types: str) -> Callable[[Any], Any]:
    def register(cls: Any) -> Any:
        for t in types:
            HANDLERS[t] = (cls.ensure, cls.delete)
        return cls
    return register


def code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def gone(exc: BaseException, *codes: str) -> bool:
    """exc is a ClientError saying the thing does not exist."""
    c = code(exc)
    return bool(c) and (c in codes or "NotFound" in c or c.startswith("NoSuch") or c == "404")


def autoname(logical: str) -> str:
    """Pulumi's auto-naming: the logical name and a random suffix."""
    return f"{logical}-{secrets.token_hex(4)[:7]}"


def ec2_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def tag_spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": ec2_tags(tags)}] if tags else []


def ec2_arn(ctx: Context, kind: str, rid: str) -> str:
    return f"arn:aws:ec2:{ctx.region}:{ctx.account}:{kind}/{rid}"


def taggable(inputs: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"tags": inputs.get("tags") or {}, "tagsAll": ctx.tags_all(inputs)}


def adoptable(rec: dict[str, Any]) -> bool:
    """Whether an earlier run may have made this resource without recording its id."""
    return rec.get("status") in ("pending", "created")


def first(items: list[Any]) -> Optional[Any]:
    return items[0] if items else None


# What the provider's reads accept as "not set" (terraform-provider-aws's errCode... constants), not a failure.
UNSET = {"NoSuchBucketPolicy", "NoSuchCORSConfiguration", "NoSuchWebsiteConfiguration", "NoSuchLifecycleConfiguration",
         "ReplicationConfigurationNotFoundError", "ServerSideEncryptionConfigurationNotFoundError",
         "ObjectLockConfigurationNotFoundError", "NoSuchTagSet", "NoSuchTagSetError", "MethodNotAllowed",
         "NotImplemented", "XNotImplemented", "UnsupportedArgument", "OwnershipControlsNotFoundError",
         "NoSuchPublicAccessBlockConfiguration", "InvalidParameterValue", "UnsupportedOperation"}


def read_back(*calls: Callable[[], Any]) -> None:
    """The calls the real provider makes to read a resource after creating (or updating) it. An access error
    fails the resource, as it fails `pulumi up`: the role's policy must allow what the provider reads."""
    for call in calls:
        try:
            call()
        except Exception as exc:
            if code(exc) not in UNSET:
                raise


# --------------------------------------------------------------------------------------------------------------
# EC2: network
# --------------------------------------------------------------------------------------------------------------
@handler("aws:ec2/vpc:Vpc")
class Vpc:
    @staticmethod
    def get(ec2: Any, vid: Optional[str]) -> Optional[dict[str, Any]]:
        if not vid:
            return None
        try:
            return first(ec2.describe_vpcs(VpcIds=[vid])["Vpcs"])
        except Exception as exc:
            if gone(exc):
                return None
            raise

    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        tags = ctx.tags_all(inputs)
        cidr = inputs["cidrBlock"]
        vpc = Vpc.get(ec2, rec.get("id"))
        if vpc is None and adoptable(rec):
            vpc = first(ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": [cidr]}, *tag_filters(tags)])["Vpcs"])
        if vpc is None:
            ctx.checkpoint()
            vpc = ec2.create_vpc(CidrBlock=cidr, InstanceTenancy=inputs.get("instanceTenancy") or "default",
                                 TagSpecifications=tag_spec("vpc", tags))["Vpc"]
        vid = vpc["VpcId"]
        rec["id"] = vid
        for key, attr in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
            if key in inputs:
                ec2.modify_vpc_attribute(VpcId=vid, **{attr: {"Value": bool(inputs[key])}})
        if tags:
            ec2.create_tags(Resources=[vid], Tags=ec2_tags(tags))
        main = first(ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                        {"Name": "association.main", "Values": ["true"]}])
                     ["RouteTables"])
        default_sg = first(ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                                 {"Name": "group-name", "Values": ["default"]}])
                           ["SecurityGroups"])
        acl = first(ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                       {"Name": "default", "Values": ["true"]}])["NetworkAcls"])
        read_back(lambda: ec2.describe_vpcs(VpcIds=[vid]),
                  *(lambda a=attr: ec2.describe_vpc_attribute(VpcId=vid, Attribute=a)
                    for attr in ("enableDnsHostnames", "enableDnsSupport", "enableNetworkAddressUsageMetrics")))
        return vid, {
            **inputs, "id": vid, "arn": ec2_arn(ctx, "vpc", vid), "cidrBlock": cidr,
            "enableDnsSupport": bool(inputs.get("enableDnsSupport", True)),
            "enableDnsHostnames": bool(inputs.get("enableDnsHostnames", False)),
            "instanceTenancy": vpc.get("InstanceTenancy", "default"), "ownerId": vpc.get("OwnerId", ctx.account),
            "mainRouteTableId": (main or {}).get("RouteTableId", ""),
            "defaultRouteTableId": (main or {}).get("RouteTableId", ""),
            "defaultSecurityGroupId": (default_sg or {}).get("GroupId", ""),
            "defaultNetworkAclId": (acl or {}).get("NetworkAclId", ""),
            "dhcpOptionsId": vpc.get("DhcpOptionsId", ""), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_vpc(VpcId=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:ec2/internetGateway:InternetGateway")
class InternetGateway:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        tags = ctx.tags_all(inputs)
        igw = None
        if rec.get("id"):
            try:
                igw = first(ec2.describe_internet_gateways(InternetGatewayIds=[rec["id"]])["InternetGateways"])
            except Exception as exc:
                if not gone(exc):
                    raise
        if igw is None and adoptable(rec) and tags:
            igw = first(ec2.describe_internet_gateways(Filters=tag_filters(tags))["InternetGateways"])
        if igw is None:
            ctx.checkpoint()
            igw = ec2.create_internet_gateway(TagSpecifications=tag_spec("internet-gateway", tags))["InternetGateway"]
        gid = igw["InternetGatewayId"]
        rec["id"] = gid
        attached = [a["VpcId"] for a in igw.get("Attachments", [])]
        vpc_id = inputs.get("vpcId")
        for other in attached:
            if other != vpc_id:
                ec2.detach_internet_gateway(InternetGatewayId=gid, VpcId=other)
        if vpc_id and vpc_id not in attached:
            ec2.attach_internet_gateway(InternetGatewayId=gid, VpcId=vpc_id)
        rec.setdefault("data", {})["vpcId"] = vpc_id
        if tags:
            ec2.create_tags(Resources=[gid], Tags=ec2_tags(tags))
        read_back(lambda: ec2.describe_internet_gateways(InternetGatewayIds=[gid]))
        return gid, {**inputs, "id": gid, "arn": ec2_arn(ctx, "internet-gateway", gid),
                     "ownerId": igw.get("OwnerId", ctx.account), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            igw = first(ec2.describe_internet_gateways(InternetGatewayIds=[rec["id"]])["InternetGateways"])
            for attachment in (igw or {}).get("Attachments", []):
                ec2.detach_internet_gateway(InternetGatewayId=rec["id"], VpcId=attachment["VpcId"])
            ec2.delete_internet_gateway(InternetGatewayId=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:ec2/routeTable:RouteTable")
class RouteTable:
    TARGETS = (("gatewayId", "GatewayId"), ("natGatewayId", "NatGatewayId"),
               ("networkInterfaceId", "NetworkInterfaceId"), ("vpcPeeringConnectionId", "VpcPeeringConnectionId"),
               ("transitGatewayId", "TransitGatewayId"), ("vpcEndpointId", "VpcEndpointId"))

    @staticmethod
    def get(ec2: Any, rid: Optional[str]) -> Optional[dict[str, Any]]:
        if not rid:
            return None
        try:
            return first(ec2.describe_route_tables(RouteTableIds=[rid])["RouteTables"])
        except Exception as exc:
            if gone(exc):
                return None
            raise

    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        tags = ctx.tags_all(inputs)
        vpc_id = inputs["vpcId"]
        table = RouteTable.get(ec2, rec.get("id"))
        if table is None and adoptable(rec) and tags:
            table = first(ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                             *tag_filters(tags)])["RouteTables"])
        if table is None:
            ctx.checkpoint()
            table = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=tag_spec("route-table", tags))["RouteTable"]
        rid = table["RouteTableId"]
        rec["id"] = rid
        current = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}
        for route in inputs.get("routes") or []:
            cidr = route.get("cidrBlock")
            target = {api: route[key] for key, api in RouteTable.TARGETS if route.get(key)}
            if not cidr or not target:
                continue
            have = current.get(cidr)
            if have is None:
                ec2.create_route(RouteTableId=rid, DestinationCidrBlock=cidr, **target)
            elif any(have.get(api) != value for api, value in target.items()):
                ec2.replace_route(RouteTableId=rid, DestinationCidrBlock=cidr, **target)
        if tags:
            ec2.create_tags(Resources=[rid], Tags=ec2_tags(tags))
        read_back(lambda: ec2.describe_route_tables(RouteTableIds=[rid]))
        return rid, {**inputs, "id": rid, "arn": ec2_arn(ctx, "route-table", rid), "vpcId": vpc_id,
                     "routes": inputs.get("routes") or [], "propagatingVgws": [],
                     "ownerId": table.get("OwnerId", ctx.account), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        ec2 = ctx.client("ec2")
        try:
            table = RouteTable.get(ec2, rec["id"])
            for association in (table or {}).get("Associations", []):
                if not association.get("Main"):
                    ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
            ec2.delete_route_table(RouteTableId=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:ec2/subnet:Subnet")
class Subnet:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        tags = ctx.tags_all(inputs)
        vpc_id, cidr = inputs["vpcId"], inputs["cidrBlock"]
        subnet = None
        if rec.get("id"):
            try:
                subnet = first(ec2.describe_subnets(SubnetIds=[rec["id"]])["Subnets"])
            except Exception as exc:
                if not gone(exc):
                    raise
        if subnet is None and adoptable(rec):
            subnet = first(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                         {"Name": "cidr-block", "Values": [cidr]}])["Subnets"])
        if subnet is None:
            ctx.checkpoint()
            extra = {"AvailabilityZone": inputs["availabilityZone"]} if inputs.get("availabilityZone") else {}
            subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, TagSpecifications=tag_spec("subnet", tags),
                                       **extra)["Subnet"]
        sid = subnet["SubnetId"]
        rec["id"] = sid
        if "mapPublicIpOnLaunch" in inputs:
            public = {"Value": bool(inputs["mapPublicIpOnLaunch"])}
            ec2.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch=public)
        if tags:
            ec2.create_tags(Resources=[sid], Tags=ec2_tags(tags))
        read_back(lambda: ec2.describe_subnets(SubnetIds=[sid]))
        return sid, {**inputs, "id": sid, "arn": ec2_arn(ctx, "subnet", sid), "vpcId": vpc_id, "cidrBlock": cidr,
                     "availabilityZone": subnet["AvailabilityZone"],
                     "availabilityZoneId": subnet.get("AvailabilityZoneId", ""),
                     "mapPublicIpOnLaunch": bool(inputs.get("mapPublicIpOnLaunch", False)),
                     "ownerId": subnet.get("OwnerId", ctx.account), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_subnet(SubnetId=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:ec2/routeTableAssociation:RouteTableAssociation")
class RouteTableAssociation:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        subnet_id, table_id = inputs["subnetId"], inputs["routeTableId"]
        found = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
        association = None
        for table in found["RouteTables"]:
            for a in table.get("Associations", []):
                if a.get("SubnetId") != subnet_id:
                    continue
                if table["RouteTableId"] == table_id:
                    association = a["RouteTableAssociationId"]
                else:  # the subnet moved to our table: what Terraform does with replace_route_table_association
                    association = ec2.replace_route_table_association(
                        AssociationId=a["RouteTableAssociationId"], RouteTableId=table_id)["NewAssociationId"]
        if association is None:
            ctx.checkpoint()
            association = ec2.associate_route_table(SubnetId=subnet_id, RouteTableId=table_id)["AssociationId"]
        rec["id"] = association
        read_back(lambda: ec2.describe_route_tables(RouteTableIds=[table_id]))
        return association, {**inputs, "id": association}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").disassociate_route_table(AssociationId=rec["id"])
        except Exception as exc:
            if not gone(exc, "InvalidAssociationID.NotFound"):
                raise


@handler("aws:ec2/securityGroup:SecurityGroup")
class SecurityGroup:
    @staticmethod
    def atoms(rules: list[dict[str, Any]], group_id: str) -> dict[tuple[Any, ...], str]:
        """Each (protocol, from, to, kind, source) a rule allows -> its description."""
        out: dict[tuple[Any, ...], str] = {}
        for rule in rules:
            proto = str(rule.get("protocol", "-1")).lower()
            proto = "-1" if proto in ("-1", "all") else proto
            ports = (None, None) if proto == "-1" else (int(rule.get("fromPort", 0)), int(rule.get("toPort", 0)))
            desc = rule.get("description") or ""
            for cidr in rule.get("cidrBlocks") or []:
                out[(proto, *ports, "cidr", cidr)] = desc
            for cidr in rule.get("ipv6CidrBlocks") or []:
                out[(proto, *ports, "cidr6", cidr)] = desc
            for group in rule.get("securityGroups") or []:
                out[(proto, *ports, "group", group)] = desc
            if rule.get("self"):
                out[(proto, *ports, "group", group_id)] = desc
        return out

    @staticmethod
    def current(permissions: list[dict[str, Any]]) -> dict[tuple[Any, ...], str]:
        out: dict[tuple[Any, ...], str] = {}
        for p in permissions:
            proto = str(p.get("IpProtocol", "-1"))
            ports = (None, None) if proto == "-1" else (p.get("FromPort"), p.get("ToPort"))
            for kind, field, key in (("cidr", "IpRanges", "CidrIp"), ("cidr6", "Ipv6Ranges", "CidrIpv6"),
                                     ("group", "UserIdGroupPairs", "GroupId")):
                for source in p.get(field, []):
                    out[(proto, *ports, kind, source[key])] = source.get("Description") or ""
        return out

    @staticmethod
    def permission(atom: tuple[Any, ...], desc: str = "") -> dict[str, Any]:
        proto, low, high, kind, source = atom
        perm: dict[str, Any] = {"IpProtocol": proto}
        if proto != "-1":
            perm.update(FromPort=low, ToPort=high)
        d = {"Description": desc} if desc else {}
        if kind == "cidr":
            perm["IpRanges"] = [{"CidrIp": source, **d}]
        elif kind == "cidr6":
            perm["Ipv6Ranges"] = [{"CidrIpv6": source, **d}]
        else:
            perm["UserIdGroupPairs"] = [{"GroupId": source, **d}]
        return perm

    @staticmethod
    def get(ec2: Any, gid: Optional[str]) -> Optional[dict[str, Any]]:
        if not gid:
            return None
        try:
            return first(ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"])
        except Exception as exc:
            if gone(exc):
                return None
            raise

    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = ctx.client("ec2")
        tags = ctx.tags_all(inputs)
        vpc_id = inputs.get("vpcId")
        data = rec.setdefault("data", {})
        name = inputs.get("name") or data.get("name") or (
            inputs["namePrefix"] + secrets.token_hex(13) if inputs.get("namePrefix") else autoname(rec["name"]))
        data["name"] = name
        group = SecurityGroup.get(ec2, rec.get("id"))
        if group is None and adoptable(rec):
            filters = [{"Name": "group-name", "Values": [name]}]
            if vpc_id:
                filters.append({"Name": "vpc-id", "Values": [vpc_id]})
            group = first(ec2.describe_security_groups(Filters=filters)["SecurityGroups"])
        if group is None:
            ctx.checkpoint()
            extra = {"VpcId": vpc_id} if vpc_id else {}
            description = inputs.get("description") or "Managed by Pulumi"
            gid = ec2.create_security_group(GroupName=name, Description=description,
                                            TagSpecifications=tag_spec("security-group", tags), **extra)["GroupId"]
            group = SecurityGroup.get(ec2, gid)
            assert group is not None
        gid = group["GroupId"]
        rec["id"] = gid
        for direction, key, field in (("ingress", "ingress", "IpPermissions"),
                                      ("egress", "egress", "IpPermissionsEgress")):
            want = SecurityGroup.atoms(inputs.get(key) or [], gid)
            have = SecurityGroup.current(group.get(field, []))
            extra_atoms = [a for a in have if a not in want]
            missing = [a for a in want if a not in have]
            revoke = getattr(ec2, f"revoke_security_group_{direction}")
            authorize = getattr(ec2, f"authorize_security_group_{direction}")
            # A rule whose description changes is revoked and authorized again, as the provider does it (it
            # never calls UpdateSecurityGroupRuleDescriptions*): the default egress rule has none.
            described = [a for a in want if a in have and have[a] != want[a]]
            if extra_atoms or described:
                revoke(GroupId=gid, IpPermissions=[SecurityGroup.permission(a) for a in extra_atoms + described])
            if missing or described:
                authorize(GroupId=gid, IpPermissions=[SecurityGroup.permission(a, want[a])
                                                      for a in missing + described])
        if tags:
            ec2.create_tags(Resources=[gid], Tags=ec2_tags(tags))
        read_back(lambda: ec2.describe_security_groups(GroupIds=[gid]))
        return gid, {**inputs, "id": gid, "arn": ec2_arn(ctx, "security-group", gid), "name": name,
                     "namePrefix": inputs.get("namePrefix", ""), "description": group.get("Description", ""),
                     "vpcId": group.get("VpcId", vpc_id or ""), "ownerId": group.get("OwnerId", ctx.account),
                     "ingress": inputs.get("ingress") or [], "egress": inputs.get("egress") or [],
                     "revokeRulesOnDelete": bool(inputs.get("revokeRulesOnDelete", False)), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("ec2").delete_security_group(GroupId=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


# --------------------------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------------------------
def iam_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


@handler("aws:iam/role:Role")
class Role:
    @staticmethod
    def get(iam: Any, name: str) -> Optional[dict[str, Any]]:
        try:
            return dict(iam.get_role(RoleName=name)["Role"])
        except Exception as exc:
            if gone(exc):
                return None
            raise

    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = ctx.client("iam")
        tags = ctx.tags_all(inputs)
        data = rec.setdefault("data", {})
        name = inputs.get("name") or data.get("name") or (
            inputs["namePrefix"] + secrets.token_hex(13) if inputs.get("namePrefix") else autoname(rec["name"]))
        data["name"] = name
        policy = inputs["assumeRolePolicy"]
        # Create first, as the provider does: a role the policy scopes by path (role/lit/*) cannot be asked
        # for before it exists (IAM, like the fake cloud, checks GetRole on role/<name> then: denied).
        role = Role.get(iam, name) if rec.get("id") else None
        if role is None:
            ctx.checkpoint()
            kwargs: dict[str, Any] = {"RoleName": name, "Path": inputs.get("path") or "/",
                                      "AssumeRolePolicyDocument": policy,
                                      "MaxSessionDuration": int(inputs.get("maxSessionDuration") or 3600)}
            if inputs.get("description"):
                kwargs["Description"] = inputs["description"]
            if tags:
                kwargs["Tags"] = iam_tags(tags)
            try:
                role = iam.create_role(**kwargs)["Role"]
            except Exception as exc:  # an interrupted run made it (the name is recorded before the create)
                if code(exc) != "EntityAlreadyExists":
                    raise
                role = iam.get_role(RoleName=name)["Role"]
        document = role.get("AssumeRolePolicyDocument")
        if isinstance(document, str):
            document = json.loads(document)
        if document != json.loads(policy):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=policy)
        if tags:
            iam.tag_role(RoleName=name, Tags=iam_tags(tags))
        rec["id"] = name
        read_back(lambda: iam.get_role(RoleName=name), lambda: iam.list_role_policies(RoleName=name),
                  lambda: iam.list_attached_role_policies(RoleName=name))
        return name, {**inputs, "id": name, "name": name, "arn": role["Arn"], "uniqueId": role.get("RoleId", ""),
                      "path": role.get("Path", "/"), "createDate": iso(role.get("CreateDate")),
                      "assumeRolePolicy": policy, "description": inputs.get("description", ""),
                      "maxSessionDuration": int(inputs.get("maxSessionDuration") or 3600),
                      "forceDetachPolicies": bool(inputs.get("forceDetachPolicies", False)),
                      "managedPolicyArns": [], "inlinePolicies": [], **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        name = rec["id"]
        try:
            # What the provider does before DeleteRole: leave no instance profile or inline policy behind.
            for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"],
                                                      RoleName=name)
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            iam.delete_role(RoleName=name)
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
class RolePolicyAttachment:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = ctx.client("iam")
        role, arn = inputs["role"], inputs["policyArn"]
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}
        if arn not in attached:
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        rid = rec.get("id") or f"{role}-{secrets.token_hex(13)}"
        rec["id"] = rid
        rec.setdefault("data", {}).update(role=role, policyArn=arn)
        return rid, {**inputs, "id": rid}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        data = rec.get("data") or {}
        try:
            ctx.client("iam").detach_role_policy(RoleName=data["role"], PolicyArn=data["policyArn"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:iam/instanceProfile:InstanceProfile")
class InstanceProfile:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        iam = ctx.client("iam")
        tags = ctx.tags_all(inputs)
        data = rec.setdefault("data", {})
        name = inputs.get("name") or data.get("name") or (
            inputs["namePrefix"] + secrets.token_hex(13) if inputs.get("namePrefix") else autoname(rec["name"]))
        data["name"] = name
        profile = None
        if rec.get("id"):  # create first, as for the role
            try:
                profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            except Exception as exc:
                if not gone(exc):
                    raise
        if profile is None:
            ctx.checkpoint()
            kwargs: dict[str, Any] = {"InstanceProfileName": name, "Path": inputs.get("path") or "/"}
            if tags:
                kwargs["Tags"] = iam_tags(tags)
            try:
                profile = iam.create_instance_profile(**kwargs)["InstanceProfile"]
            except Exception as exc:
                if code(exc) != "EntityAlreadyExists":
                    raise
                profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        want = inputs.get("role")
        have = [r["RoleName"] for r in profile.get("Roles", [])]
        for other in have:
            if other != want:
                iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other)
        if want and want not in have:
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=want)
        rec["id"] = name
        read_back(lambda: iam.get_instance_profile(InstanceProfileName=name),
                  *([lambda: iam.get_role(RoleName=want)] if want else []))
        return name, {**inputs, "id": name, "name": name, "arn": profile["Arn"],
                      "uniqueId": profile.get("InstanceProfileId", ""), "path": profile.get("Path", "/"),
                      "role": want or "", "createDate": iso(profile.get("CreateDate")), **taggable(inputs, ctx)}

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        name = rec["id"]
        try:
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            for role in profile.get("Roles", []):
                iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
            iam.delete_instance_profile(InstanceProfileName=name)
        except Exception as exc:
            if not gone(exc):
                raise


# --------------------------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------------------------
BUCKET_SUFFIX = 26  # Terraform's unique suffix for bucket_prefix: prefix (<= 37) + 26 characters <= 63


def bucket_exists(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
        return True
    except Exception as exc:
        if gone(exc):
            return False
        raise


@handler("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
class Bucket:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        s3 = ctx.client("s3")
        tags = ctx.tags_all(inputs)
        data = rec.setdefault("data", {})
        name = inputs.get("bucket") or data.get("name")
        if not name:
            alphabet = string.ascii_lowercase + string.digits
            prefix = inputs.get("bucketPrefix") or "terraform-"
            name = prefix + "".join(secrets.choice(alphabet) for _ in range(BUCKET_SUFFIX))
        data["name"] = name
        if not bucket_exists(s3, name):
            ctx.checkpoint()
            kwargs: dict[str, Any] = {"Bucket": name}
            if ctx.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
            s3.create_bucket(**kwargs)
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
        rec["id"] = name
        Bucket.read(s3, name)
        return name, {**inputs, "id": name, "bucket": name, "arn": f"arn:aws:s3:::{name}",
                      "bucketDomainName": f"{name}.s3.amazonaws.com",
                      "bucketRegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
                      "region": ctx.region, "hostedZoneId": "Z3AQBSTGFYJSTF",
                      "forceDestroy": bool(inputs.get("forceDestroy", False)), **taggable(inputs, ctx)}

    @staticmethod
    def read(s3: Any, name: str) -> None:
        """What terraform-provider-aws's resourceBucketRead (internal/service/s3/bucket.go) calls, in order."""
        read_back(*(lambda m=method: getattr(s3, m)(Bucket=name) for method in (
            "head_bucket", "get_bucket_policy", "get_bucket_acl", "get_bucket_cors", "get_bucket_website",
            "get_bucket_versioning", "get_bucket_accelerate_configuration", "get_bucket_request_payment",
            "get_bucket_logging", "get_bucket_lifecycle_configuration", "get_bucket_replication",
            "get_bucket_encryption", "get_object_lock_configuration", "head_bucket", "get_bucket_tagging")))

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("s3").delete_bucket(Bucket=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


def _bucket_setting(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any],
                    put: Callable[[Any, str], None], read: str) -> tuple[str, dict[str, Any]]:
    bucket = inputs["bucket"]
    s3 = ctx.client("s3")
    put(s3, bucket)
    read_back(lambda: getattr(s3, read)(Bucket=bucket))  # the provider reads the setting back
    rec["id"] = bucket
    return bucket, {**inputs, "id": bucket}


@handler("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
         "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
class BucketEncryption:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        rules = []
        for rule in inputs.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            r: dict[str, Any] = {}
            if default:
                r["ApplyServerSideEncryptionByDefault"] = {"SSEAlgorithm": default.get("sseAlgorithm", "AES256")}
                if default.get("kmsMasterKeyId"):
                    r["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default["kmsMasterKeyId"]
            if "bucketKeyEnabled" in rule:
                r["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
            rules.append(r)
        return _bucket_setting(ctx, inputs, rec, lambda s3, b: s3.put_bucket_encryption(
            Bucket=b, ServerSideEncryptionConfiguration={"Rules": rules}), "get_bucket_encryption")

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("s3").delete_bucket_encryption(Bucket=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
class BucketPublicAccessBlock:
    KEYS = (("blockPublicAcls", "BlockPublicAcls"), ("blockPublicPolicy", "BlockPublicPolicy"),
            ("ignorePublicAcls", "IgnorePublicAcls"), ("restrictPublicBuckets", "RestrictPublicBuckets"))

    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        config = {api: bool(inputs.get(key, False)) for key, api in BucketPublicAccessBlock.KEYS}
        return _bucket_setting(ctx, inputs, rec, lambda s3, b: s3.put_public_access_block(
            Bucket=b, PublicAccessBlockConfiguration=config), "get_public_access_block")

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("s3").delete_public_access_block(Bucket=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


@handler("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
class BucketOwnershipControls:
    @staticmethod
    def ensure(ctx: Context, inputs: dict[str, Any], rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ownership = (inputs.get("rule") or {}).get("objectOwnership", "BucketOwnerEnforced")
        return _bucket_setting(ctx, inputs, rec, lambda s3, b: s3.put_bucket_ownership_controls(
            Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": ownership}]}),
            "get_bucket_ownership_controls")

    @staticmethod
    def delete(ctx: Context, rec: dict[str, Any]) -> None:
        try:
            ctx.client("s3").delete_bucket_ownership_controls(Bucket=rec["id"])
        except Exception as exc:
            if not gone(exc):
                raise


# --------------------------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------------------------
PROVIDER_TYPE = "pulumi:providers:aws"


def _decoded(value: Any) -> Any:
    """Provider inputs arrive JSON-encoded (Pulumi serializes a provider's non-string inputs)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def provider_context(inputs: dict[str, Any], endpoint: str, fallback_region: str,
                     credentials: Optional[tuple[str, str]] = None) -> Context:
    """The Context an aws Provider resource stands for: its region, default tags and assumed role (assumed with
    `credentials`, else the environment's: the operator's)."""
    from .aws import DEFAULT_REGION, assumed_session, base_session

    region = inputs.get("region") or fallback_region or DEFAULT_REGION
    roles = _decoded(inputs.get("assumeRoles")) or []
    single = _decoded(inputs.get("assumeRole"))
    if isinstance(single, dict) and single:
        roles = [single]
    default_tags = (_decoded(inputs.get("defaultTags")) or {}).get("tags") or {}
    session = None
    for role in roles:  # a chain: each role assumed with the previous one's credentials is beyond moto; use the last
        if role.get("roleArn"):
            session = assumed_session(endpoint, role["roleArn"], role.get("externalId") or None, region,
                                      role.get("sessionName") or "lit-fakecloud", credentials)
    if session is None:
        session = base_session(region, credentials)
    aws = Endpoint(session, endpoint, region)
    account = aws.client("sts").get_caller_identity()["Account"]
    return Context(aws, account, {str(k): str(v) for k, v in default_tags.items()})
