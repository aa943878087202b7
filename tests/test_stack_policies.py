"""The cluster stack's policies, checked on the real `lit.stacks.cluster.program` run under Pulumi mocks.

Like pulumi/examples testing-unit-py, but as policies over everything the program registers: a Mocks class
answers resource registrations (fake ids, echoed inputs, plausible computed `arn`/`name`) and the
availability-zone lookup, and a recording MockMonitor keeps each resource's type, name, inputs, parent and
provider reference; the stack's exports are resolved from the root Stack resource.

Each config runs in its own interpreter (tests/mockstack.py), all at once, once per module: Pulumi's
runtime state is process-global (settings, root stack, config, and an event loop per RPC worker thread that
is never closed), so running the program several times inside pytest's process would leak it into other
tests. The pytest process itself never imports pulumi.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests import mockstack

ACCOUNT = "123456789012"
CLUSTER = "policy-test"
REGION = "us-east-1"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]  # what the mocked getAvailabilityZones answers
LOCAL_ZONE = "us-east-1-bos-1a"  # an opted-in Local Zone: answered too, unless the program filters it out
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/lit-deployer"
EXTERNAL_ID = "lit-ext-7f3a9c"
SSH_CIDR = "203.0.113.7/32"
POLICY_ARNS = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", f"arn:aws:iam::{ACCOUNT}:policy/datasets-read"]
BUCKET_NAME = f"lit-{CLUSTER}-0123456789abcdefghijklmnop"

BASE = {
    "lit:clusterName": CLUSTER,
    "lit:roleArn": ROLE_ARN,
    "lit:externalId": EXTERNAL_ID,
    "lit:sshCidr": SSH_CIDR,
    "lit:workPolicyArns": json.dumps(POLICY_ARNS),
    "lit:bucketName": BUCKET_NAME,  # lit names the bucket (and records the name) before the stack runs
    "aws:region": REGION,
}
CONFIGS: dict[str, dict[str, str]] = {
    # Two work policies and an external id.
    "full": BASE,
    # What Pulumi.yaml's defaults give: no external id (""), no work policies ("[]"), no bucket name ("").
    "minimal": {**BASE, "lit:clusterName": "bare", "lit:externalId": "", "lit:workPolicyArns": "[]",
                "lit:bucketName": ""},
    # SSH from the whole internet, which the program must refuse.
    "ssh-open-ipv4": {**BASE, "lit:sshCidr": "0.0.0.0/0"},
    "ssh-open-ipv6": {**BASE, "lit:sshCidr": "::/0"},
    # An operator on IPv6.
    "ssh-ipv6-operator": {**BASE, "lit:sshCidr": "2001:db8::7/128"},
}
DEPLOYED = ["full", "minimal"]

PROVIDER_TYPE = "pulumi:providers:aws"
COMPONENT_TYPES = {"lit:cluster:Network", "lit:cluster:Security", "lit:cluster:Identity", "lit:cluster:Storage"}
EXPORTS = {"cluster_name", "region", "availability_zones", "vpc_id", "subnet_ids", "security_group_id",
           "work_role_arn", "instance_profile_name", "instance_profile_arn", "bucket"}
# The resources the policy on tags names; each must also be taggable by the provider's own schema.
MUST_BE_TAGGED = {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/internetGateway:InternetGateway",
                  "aws:ec2/routeTable:RouteTable", "aws:ec2/securityGroup:SecurityGroup", "aws:iam/role:Role",
                  "aws:iam/instanceProfile:InstanceProfile", "aws:s3/bucket:Bucket"}
WORLD = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


# ------------------------------------------------------------------------------------------------------------
# The harness: runs in a child interpreter (`python tests/mockstack.py tests.test_stack_policies CONFIG OUT`).
# ------------------------------------------------------------------------------------------------------------

def _run_program(config: dict[str, str]) -> dict[str, Any]:
    """Run the cluster program under mocks with `config`; everything it registered, invoked and exported."""
    import importlib
    import zlib

    import pulumi

    from lit.stacks.cluster import program
    from tests.mockstack import run_under_mocks

    def taggable(type_: str) -> bool:
        """Whether the aws resource type accepts `tags` (its Args class has the property)."""
        package, module, cls = type_.split(":")
        if package != "aws":
            return False
        mod_name = module.split("/")[0]
        mod = importlib.import_module("pulumi_aws" if mod_name == "index" else f"pulumi_aws.{mod_name}")
        args = getattr(mod, f"{cls}Args", None)
        return args is not None and isinstance(getattr(args, "tags", None), property)

    class Mocks(pulumi.runtime.Mocks):
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            if not args.custom:
                return None, {}
            state = dict(args.inputs)
            if args.typ == PROVIDER_TYPE:
                return f"{args.name}-provider-id", state
            service = args.typ.split(":")[1].split("/")[0]
            physical = state.get("name") or f"{args.name}-{zlib.crc32(f'{args.typ}/{args.name}'.encode()):08x}"
            if args.typ == "aws:s3/bucket:Bucket":
                physical = state.get("bucket") or f"{state.get('bucketPrefix', '')}20250101000000000001"
                state["bucket"] = physical
            elif "name" not in state and args.typ.startswith("aws:iam/"):
                state["name"] = physical
            state.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT}:{args.typ.split(':')[2]}/{physical}")
            resource_id = physical if args.typ.startswith(("aws:s3/bucket:", "aws:iam/")) else f"{args.name}-id"
            return resource_id, state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            self.calls.append({"token": args.token, "args": args.args, "provider": args.provider})
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                # As EC2 answers an account with an opted-in Local Zone: it is "available" and sorts first; the
                # filters the program passes are applied as DescribeAvailabilityZones does.
                zones = [{"name": name, "zoneId": f"use1-az{i}", "zoneType": "availability-zone"}
                         for i, name in enumerate(ZONES, 1)] + \
                        [{"name": LOCAL_ZONE, "zoneId": "use1-bos1-az1", "zoneType": "local-zone"}]
                for f in args.args.get("filters") or []:
                    key = {"zone-type": "zoneType", "zone-name": "name", "zone-id": "zoneId"}[f["name"]]
                    zones = [z for z in zones if z[key] in f["values"]]
                zones.sort(key=lambda z: z["name"])
                return {"id": REGION, "names": [z["name"] for z in zones], "zoneIds": [z["zoneId"] for z in zones],
                        "groupNames": [REGION] * len(zones), "state": "available"}, []
            return {}, []

    def recorded_outputs(monitor: Any, request: Any, response: Any) -> dict[str, Any]:
        return {"outputs": monitor.resources[response.urn].state, "taggable": taggable(request.type)}

    mocks = Mocks()
    return {**run_under_mocks(program, mocks, config, "lit", recorded_outputs), "calls": mocks.calls}


# ------------------------------------------------------------------------------------------------------------
# The recorded stack, as the tests see it.
# ------------------------------------------------------------------------------------------------------------

class Recorded(mockstack.Recorded):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.calls: list[dict[str, Any]] = data["calls"]

    def aws(self) -> list[dict[str, Any]]:
        """The AWS resources (custom resources of the aws package; not the provider, not components)."""
        return [r for r in self.resources if r["custom"] and r["type"].startswith("aws:")]

    def provider_ref(self, provider: dict[str, Any]) -> str:
        return f"{provider['urn']}::{provider['id']}"


def _decoded(value: Any) -> Any:
    """Provider config arrives JSON-encoded when it is not a string; decode it if so."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    """Every config's run, all run at once in child interpreters."""
    return mockstack.record_all(__name__, CONFIGS, tmp_path_factory.mktemp("stack-policies"), Recorded, timeout=60)


@pytest.fixture(params=DEPLOYED)
def stack(request: pytest.FixtureRequest, recorded: dict[str, Recorded]) -> Recorded:
    """A config the program deploys (it must not have refused it)."""
    run = recorded[request.param]
    assert run.error is None, f"the program failed for {request.param}: {run.error}"
    return run


# ------------------------------------------------------------------------------------------------------------
# Policies.
# ------------------------------------------------------------------------------------------------------------

def _rule(where: str, protocol: Any, from_port: Any, to_port: Any, ipv4: Any, ipv6: Any, other_sources: Any,
          self_: Any = False) -> dict[str, Any]:
    ipv4, ipv6 = [c for c in ipv4 or [] if c], [c for c in ipv6 or [] if c]
    return {"where": where, "protocol": str(protocol), "from": from_port, "to": to_port, "ipv4": ipv4, "ipv6": ipv6,
            "cidrs": ipv4 + ipv6, "other_sources": bool(other_sources), "self": bool(self_)}


def _ingress_rules(run: Recorded) -> list[dict[str, Any]]:
    """Every ingress rule, whether inline in a group or a resource of its own, as protocol/ports/sources."""
    rules = []
    for group in run.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in group["inputs"].get("ingress") or []:
            rules.append(_rule(group["name"], rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"),
                               rule.get("cidrBlocks"), rule.get("ipv6CidrBlocks"),
                               rule.get("prefixListIds") or rule.get("securityGroups"), rule.get("self")))
    for rule in run.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
        inputs = rule["inputs"]
        if inputs.get("type") == "ingress":
            rules.append(_rule(rule["name"], inputs.get("protocol"), inputs.get("fromPort"), inputs.get("toPort"),
                               inputs.get("cidrBlocks"), inputs.get("ipv6CidrBlocks"),
                               inputs.get("prefixListIds") or inputs.get("sourceSecurityGroupId"), inputs.get("self")))
    for rule in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        inputs = rule["inputs"]
        rules.append(_rule(rule["name"], inputs.get("ipProtocol"), inputs.get("fromPort"), inputs.get("toPort"),
                           [inputs.get("cidrIpv4")], [inputs.get("cidrIpv6")],
                           inputs.get("prefixListId") or inputs.get("referencedSecurityGroupId")))
    return rules


def _reaches_port(rule: dict[str, Any], port: int) -> bool:
    if rule["protocol"].lower() in ("-1", "all"):
        return True
    if rule["protocol"].lower() not in ("tcp", "6"):
        return False
    return int(rule["from"] or 0) <= port <= int(rule["to"] if rule["to"] is not None else 65535)


def _all_ports(rule: dict[str, Any]) -> bool:
    return rule["protocol"].lower() in ("-1", "all") or (int(rule["from"] or 0) <= 0 and int(rule["to"] or 0) >= 65535)


def test_policy_no_security_group_opens_ssh_or_all_ports_to_the_internet(stack: Recorded) -> None:
    rules = _ingress_rules(stack)
    assert rules, "the cluster has no ingress rules at all: SSH from the operator is missing"
    for rule in rules:
        if _reaches_port(rule, 22) or _all_ports(rule):
            world = [c for c in rule["cidrs"] if ipaddress.ip_network(c, strict=False) in WORLD]
            assert not world, f"{rule['where']} opens {rule['protocol']} {rule['from']}-{rule['to']} to {world}"


def _assert_ssh_only_from_the_configured_cidr(run: Recorded) -> None:
    ssh_cidr = run.config["lit:sshCidr"]
    rules = _ingress_rules(run)
    # A CIDR in the other family's field is rejected by EC2 (IpRanges take IPv4, Ipv6Ranges IPv6).
    misplaced = [(r["where"], c) for r in rules for version in (4, 6) for c in r[f"ipv{version}"]
                 if ipaddress.ip_network(c, strict=False).version != version]
    assert not misplaced, f"CIDRs in the rule field of the other address family: {misplaced}"
    ssh_rules = [r for r in rules if _reaches_port(r, 22)]
    from_addresses = [r for r in ssh_rules if r["cidrs"] or r["other_sources"]]
    assert from_addresses, "no rule lets the operator SSH in"
    for rule in from_addresses:
        assert rule["cidrs"] == [ssh_cidr] and not rule["other_sources"], (
            f"{rule['where']} lets SSH in from {rule['cidrs']} (other sources: {rule['other_sources']}),"
            f" not exactly {ssh_cidr}")
    # Whatever else reaches port 22 may only be the group's own machines.
    assert all(r["self"] for r in ssh_rules if r not in from_addresses)


def test_policy_ssh_only_from_exactly_the_configured_cidr(stack: Recorded) -> None:
    _assert_ssh_only_from_the_configured_cidr(stack)


def test_policy_ssh_from_an_ipv6_operator_address_is_valid_or_refused(recorded: dict[str, Recorded]) -> None:
    run = recorded["ssh-ipv6-operator"]
    if run.error is not None:  # refusing an IPv6 address with a clear message would do too
        assert run.error["type"] == "ValueError" and "sshCidr" in run.error["message"], run.error
        return
    _assert_ssh_only_from_the_configured_cidr(run)


@pytest.mark.parametrize("key", ["ssh-open-ipv4", "ssh-open-ipv6"])
def test_policy_the_program_refuses_ssh_from_the_whole_internet(key: str, recorded: dict[str, Recorded]) -> None:
    run = recorded[key]
    assert run.error is not None, f"the program accepted lit:sshCidr={run.config['lit:sshCidr']}"
    assert run.error["type"] == "ValueError" and "sshCidr" in run.error["message"], run.error
    assert not run.of_type("aws:ec2/securityGroup:SecurityGroup"), "a security group was registered anyway"


def test_policy_every_taggable_resource_carries_the_cluster_tag(stack: Recorded) -> None:
    tag = {"lit:cluster": stack.name}
    taggable = [r for r in stack.aws() if r["taggable"]]
    types = {r["type"] for r in taggable}
    assert types >= MUST_BE_TAGGED, f"not taggable or not created: {sorted(MUST_BE_TAGGED - types)}"
    untagged = [f"{r['type']} {r['name']}: {r['inputs'].get('tags')}" for r in taggable
                if (r["inputs"].get("tags") or {}).get("lit:cluster") != stack.name]
    assert not untagged, f"resources without {tag}: {untagged}"
    provider = stack.one(PROVIDER_TYPE)
    default_tags = _decoded(provider["inputs"].get("defaultTags")) or {}
    assert (default_tags.get("tags") or {}).get("lit:cluster") == stack.name, f"provider default_tags: {default_tags}"


def test_policy_the_bucket_is_private_encrypted_owner_enforced_and_not_force_destroyed(stack: Recorded) -> None:
    bucket = stack.one("aws:s3/bucket:Bucket")
    assert not bucket["inputs"].get("forceDestroy"), "the bucket is force_destroy: destroying the stack loses data"
    named = stack.config["lit:bucketName"]
    if named:  # the name lit recorded, so lit can always find (and delete) the bucket
        assert bucket["inputs"].get("bucket") == named and not bucket["inputs"].get("bucketPrefix"), bucket["inputs"]
    else:
        assert bucket["inputs"].get("bucketPrefix") == f"lit-{stack.config['lit:clusterName']}-", bucket["inputs"]
    for_bucket = [r for r in stack.resources if r["inputs"].get("bucket") == bucket["id"] and r is not bucket]

    blocks = [r for r in for_bucket if r["type"] == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
    assert len(blocks) == 1, f"public access blocks for the bucket: {len(blocks)}"
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(blocks[0]["inputs"].get(flag) is True for flag in flags), blocks[0]["inputs"]

    sse = [r for r in for_bucket
           if r["type"] == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"]
    assert len(sse) == 1, f"encryption configurations for the bucket: {len(sse)}"
    algorithms = [(rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
                  for rule in sse[0]["inputs"].get("rules") or []]
    assert algorithms and all(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algorithms), algorithms

    ownership = [r for r in for_bucket if r["type"] == "aws:s3/bucketOwnershipControls:BucketOwnershipControls"]
    assert len(ownership) == 1, f"ownership controls for the bucket: {len(ownership)}"
    rule = ownership[0]["inputs"].get("rule") or {}
    assert rule.get("objectOwnership") == "BucketOwnerEnforced", f"ownership: {rule} (ACLs stay enabled)"

    # Nothing re-opens it: no ACL and no bucket policy resources.
    opened = [r["type"] for r in for_bucket if r["type"].split(":")[2] in ("BucketAcl", "BucketPolicy")]
    assert not opened, opened


def test_policy_the_work_role_is_for_ec2_only_with_exactly_the_configured_policies(stack: Recorded) -> None:
    role = stack.one("aws:iam/role:Role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    assert "*" not in json.dumps(trust), f"wildcard in the trust policy: {trust}"
    statements = trust["Statement"] if isinstance(trust["Statement"], list) else [trust["Statement"]]
    assert len(statements) == 1, statements
    statement = statements[0]
    assert statement.get("Effect") == "Allow" and statement.get("Action") == "sts:AssumeRole", statement
    principal = statement.get("Principal")
    assert isinstance(principal, dict) and set(principal) == {"Service"}, f"principal: {principal}"
    assert principal["Service"] in ("ec2.amazonaws.com", ["ec2.amazonaws.com"]), principal
    assert "NotPrincipal" not in statement and "NotAction" not in statement, statement

    # No inline policy, no managed policies set on the role itself: only the attachments below.
    assert not role["inputs"].get("inlinePolicies"), role["inputs"].get("inlinePolicies")
    assert not role["inputs"].get("managedPolicyArns"), role["inputs"].get("managedPolicyArns")
    role_name = role["outputs"]["name"]
    inline = [r["name"] for r in stack.resources if r["type"] == "aws:iam/rolePolicy:RolePolicy"]
    assert not inline, f"inline role policies: {inline}"

    attachments = [r for r in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                   if r["inputs"].get("role") == role_name]
    attachments += [r for r in stack.of_type("aws:iam/policyAttachment:PolicyAttachment")
                    if role_name in (r["inputs"].get("roles") or [])]
    attached = sorted(r["inputs"].get("policyArn") for r in attachments)
    assert attached == sorted(json.loads(stack.config["lit:workPolicyArns"])), attached

    profiles = stack.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert [p["inputs"].get("role") for p in profiles] == [role_name], "no instance profile uses the work role"


def test_policy_every_aws_resource_goes_through_the_one_assumed_role_provider(stack: Recorded) -> None:
    provider = stack.one(PROVIDER_TYPE)
    ref = stack.provider_ref(provider)
    strays = [f"{r['type']} {r['name']}: {r['provider'] or '(default provider)'}" for r in stack.aws()
              if r["provider"] != ref]
    assert not strays, f"resources not made through {ref}: {strays}"
    assert stack.calls and all(c["provider"] == ref for c in stack.calls), stack.calls

    inputs = provider["inputs"]
    assert inputs.get("region") == stack.config["aws:region"]
    assume_roles = _decoded(inputs.get("assumeRoles")) or []
    assert len(assume_roles) == 1, assume_roles
    assert assume_roles[0].get("roleArn") == stack.config["lit:roleArn"]
    if stack.config["lit:externalId"]:
        assert assume_roles[0].get("externalId") == stack.config["lit:externalId"]
    else:
        assert not assume_roles[0].get("externalId"), f"an external id is passed: {assume_roles[0]}"
        assert "externalId" not in assume_roles[0], f"an (empty) external id is passed: {assume_roles[0]}"


def test_policy_the_network_has_public_subnets_in_distinct_azs_routed_to_the_internet(stack: Recorded) -> None:
    vpc = stack.one("aws:ec2/vpc:Vpc")
    gateway = stack.one("aws:ec2/internetGateway:InternetGateway")
    assert gateway["inputs"].get("vpcId") == vpc["id"]
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) >= 2, f"{len(subnets)} subnets"
    zones = [s["inputs"].get("availabilityZone") for s in subnets]
    assert len(set(zones)) == len(zones) and set(zones) <= set(ZONES), zones
    vpc_net = ipaddress.ip_network(vpc["inputs"]["cidrBlock"])
    nets = [ipaddress.ip_network(s["inputs"]["cidrBlock"]) for s in subnets]
    assert all(s["inputs"].get("vpcId") == vpc["id"] for s in subnets)
    assert all(net.subnet_of(vpc_net) for net in nets), nets
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:]), nets
    assert all(s["inputs"].get("mapPublicIpOnLaunch") for s in subnets), "subnets are not public"

    tables = [t for t in stack.of_type("aws:ec2/routeTable:RouteTable")
              if any(route.get("cidrBlock") == "0.0.0.0/0" and route.get("gatewayId") == gateway["id"]
                     for route in t["inputs"].get("routes") or [])]
    routes = [r for r in stack.of_type("aws:ec2/route:Route")
              if r["inputs"].get("destinationCidrBlock") == "0.0.0.0/0"
              and r["inputs"].get("gatewayId") == gateway["id"]]
    table_ids = {t["id"] for t in tables} | {r["inputs"].get("routeTableId") for r in routes}
    assert len(table_ids) == 1, f"route tables with 0.0.0.0/0 via the internet gateway: {table_ids}"
    (table_id,) = table_ids
    associations = {a["inputs"].get("subnetId"): a["inputs"].get("routeTableId")
                    for a in stack.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")}
    unrouted = [s["name"] for s in subnets if associations.get(s["id"]) != table_id]
    assert not unrouted, f"subnets not associated with the public route table: {unrouted}"


def test_policy_the_stack_exports_what_lit_reads(stack: Recorded) -> None:
    exports = stack.exports
    assert set(exports) == EXPORTS, f"missing {EXPORTS - set(exports)}, unexpected {set(exports) - EXPORTS}"
    role = stack.one("aws:iam/role:Role")
    profile = stack.one("aws:iam/instanceProfile:InstanceProfile")
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert exports["cluster_name"] == stack.name
    assert exports["region"] == stack.config["aws:region"]
    # Registration order is not the program's order: pair each exported subnet with its zone instead.
    zone_of = {s["id"]: s["inputs"]["availabilityZone"] for s in subnets}
    assert sorted(exports["subnet_ids"]) == sorted(zone_of), exports["subnet_ids"]
    assert exports["availability_zones"] == [zone_of[subnet_id] for subnet_id in exports["subnet_ids"]]
    assert exports["vpc_id"] == stack.one("aws:ec2/vpc:Vpc")["id"]
    assert exports["security_group_id"] == stack.one("aws:ec2/securityGroup:SecurityGroup")["id"]
    assert exports["work_role_arn"] == role["outputs"]["arn"]
    assert exports["instance_profile_name"] == profile["outputs"]["name"]
    assert exports["instance_profile_arn"] == profile["outputs"]["arn"]
    assert exports["bucket"] == stack.one("aws:s3/bucket:Bucket")["id"]


def test_policy_aws_resources_are_children_of_the_four_cluster_components(stack: Recorded) -> None:
    stack_urn = {r["parent"] for r in stack.resources if r["type"] == PROVIDER_TYPE}
    top = [r for r in stack.resources if r["parent"] in stack_urn and r["type"] != PROVIDER_TYPE]
    assert sorted(r["type"] for r in top) == sorted(COMPONENT_TYPES), [r["type"] for r in top]
    assert not any(r["custom"] for r in top)
    expected = {
        "lit:cluster:Network": {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/internetGateway:InternetGateway",
                                "aws:ec2/routeTable:RouteTable", "aws:ec2/routeTableAssociation:RouteTableAssociation"},
        "lit:cluster:Security": {"aws:ec2/securityGroup:SecurityGroup"},
        "lit:cluster:Identity": {"aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"},
        "lit:cluster:Storage": {"aws:s3/bucket:Bucket", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                                "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"},
    }
    orphans = [f"{r['type']} {r['name']}" for r in stack.aws() if stack.by_urn.get(r["parent"], {}).get("type")
               not in COMPONENT_TYPES]
    assert not orphans, f"AWS resources outside the cluster components: {orphans}"
    children: dict[str, set[str]] = {}
    for r in stack.aws():
        children.setdefault(stack.by_urn[r["parent"]]["type"], set()).add(r["type"])
    for component, types in expected.items():
        assert types <= children.get(component, set()), f"{component} lacks {types - children.get(component, set())}"


def test_policy_every_resource_and_call_of_the_program_has_a_row_in_the_role_permission_table(stack: Recorded) -> None:
    """The role's permissions are derived from provisioner/aws/policy.py's table: a resource type (or invoke) the
    program adds without a row there would be created without the permissions it needs."""
    from lit.provisioner.aws.policy import STACK

    used = {r["type"] for r in stack.resources if r["custom"]} | {c["token"] for c in stack.calls}
    missing = sorted(t for t in used if t not in STACK)
    assert not missing, f"no row in policy.STACK for {missing}"

