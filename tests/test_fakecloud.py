"""The fake cloud: moto on a test bridge, and MotoEngine running lit's real cluster program against it.

What the stack made is checked in moto through the fake cloud's admin user (in the customer's account), not through
the engine's records; IAM is enforced, so the engine makes all of it through the role lit's policy allows. Needs
root (the bridge): skipped otherwise, but a failure when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud import FakeCloud, MotoEngine, fakecloud_fixture, requirement
from tests.support import require
from tests.testbed import HOST_PYTHON, _same_process

REPO = Path(__file__).resolve().parent.parent
ROLE_ARN = "arn:aws:iam::111122223333:role/lit-byoc"
EXTERNAL_ID = "lit-test-external-id"  # AWS (so the fake cloud) wants 2 characters at least
STACK = "demo"


def need_fakecloud() -> None:
    require(requirement(), "the fake cloud")


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    need_fakecloud()
    yield from fakecloud_fixture()


@pytest.fixture(scope="module")
def config(cloud: FakeCloud) -> dict[str, str]:
    return {"lit:clusterName": STACK, "lit:roleArn": ROLE_ARN, "lit:externalId": EXTERNAL_ID,
            "lit:sshCidr": cloud.ssh_cidr, "lit:workPolicyArns": "[]", "aws:region": "us-east-1"}


@pytest.fixture(scope="module")
def engine(cloud: FakeCloud, tmp_path_factory: pytest.TempPathFactory) -> MotoEngine:
    return MotoEngine(tmp_path_factory.mktemp("lit_home"), env=cloud.env)


@pytest.fixture(scope="module")
def aws(cloud: FakeCloud) -> Any:
    """clients of the customer's account through the fake cloud's admin user (lit's role may not list roles or
    buckets): aws("ec2")."""
    session = cloud.admin_session()
    return lambda service: cloud.client(session, service)


@pytest.fixture(scope="module")
def outputs(engine: MotoEngine, config: dict[str, str]) -> dict[str, Any]:
    events: list[str] = []
    result = engine.up(STACK, config, events.append)
    assert any(line.startswith("+ aws:ec2/vpc:Vpc") for line in events), events
    return result


def tagged(name: str) -> list[dict[str, Any]]:
    return [{"Name": "tag:lit:cluster", "Values": [name]}]


def inventory(aws: Any) -> dict[str, list[str]]:
    """Every resource of the stack in moto, by kind (ids or names)."""
    ec2, iam, s3 = aws("ec2"), aws("iam"), aws("s3")
    return {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tagged(STACK))["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tagged(STACK))["Subnets"]],
        "gateways": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=tagged(STACK))
                     ["InternetGateways"]],
        "route_tables": [r["RouteTableId"] for r in ec2.describe_route_tables(Filters=tagged(STACK))["RouteTables"]],
        "associations": sorted(a["RouteTableAssociationId"]
                               for r in ec2.describe_route_tables(Filters=tagged(STACK))["RouteTables"]
                               for a in r["Associations"]),
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tagged(STACK))["SecurityGroups"]],
        "roles": [r["RoleName"] for r in iam.list_roles(PathPrefix="/lit/")["Roles"]],
        "profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix="/lit/")
                     ["InstanceProfiles"]],
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"lit-{STACK}-")],
    }


def test_moto_listens_on_the_bridge_and_hosts_reach_it(cloud: FakeCloud) -> None:
    assert cloud.endpoint.startswith(f"http://{cloud.bridge_address}:")
    assert cloud.env["LIT_SSH_CIDR"] == f"{cloud.bridge_address}/32"
    assert cloud.env["LIT_STACK_ENGINE"] == "tests.fakecloud.engine:MotoEngine"
    assert cloud.bed is not None
    probe = (f"import socket; socket.create_connection(('{cloud.address}', {cloud.port}), timeout=5).close(); "
             "print('ok')")
    done = cloud.bed.hosts[0].exec([HOST_PYTHON, "-c", probe], timeout=15)
    assert done.stdout.strip() == "ok", done.stderr


def test_up_makes_the_cluster_in_the_role_account(outputs: dict[str, Any], aws: Any, cloud: FakeCloud) -> None:
    assert {"vpc_id", "subnet_ids", "security_group_id", "instance_profile_name", "bucket", "region"} <= set(outputs)
    assert outputs["region"] == "us-east-1"
    ec2, iam, s3 = aws("ec2"), aws("iam"), aws("s3")

    vpcs = ec2.describe_vpcs(Filters=tagged(STACK))["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [outputs["vpc_id"]]
    assert vpcs[0]["OwnerId"] == "111122223333"

    subnets = ec2.describe_subnets(SubnetIds=outputs["subnet_ids"])["Subnets"]
    assert len(subnets) >= 2
    assert len({s["AvailabilityZone"] for s in subnets}) == len(subnets)
    assert all(s["VpcId"] == outputs["vpc_id"] and s["MapPublicIpOnLaunch"] for s in subnets)

    gateways = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id",
                                                        "Values": [outputs["vpc_id"]]}])["InternetGateways"]
    assert len(gateways) == 1
    tables = ec2.describe_route_tables(Filters=tagged(STACK))["RouteTables"]
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId") == gateways[0]["InternetGatewayId"]
               for t in tables for r in t["Routes"])
    assert {a.get("SubnetId") for t in tables for a in t["Associations"]} >= set(outputs["subnet_ids"])

    group = ec2.describe_security_groups(GroupIds=[outputs["security_group_id"]])["SecurityGroups"][0]
    assert group["VpcId"] == outputs["vpc_id"]
    ssh_sources = []
    for perm in group["IpPermissions"]:
        covers_22 = perm["IpProtocol"] == "-1" or (perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 65535))
        if covers_22:
            ssh_sources += [r["CidrIp"] for r in perm.get("IpRanges", [])]
            ssh_sources += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
            assert all(g["GroupId"] == group["GroupId"] for g in perm.get("UserIdGroupPairs", []))
    assert ssh_sources == [cloud.ssh_cidr]

    profile = iam.get_instance_profile(InstanceProfileName=outputs["instance_profile_name"])["InstanceProfile"]
    assert profile["Path"] == "/lit/"
    assert [r["RoleName"] for r in profile["Roles"]] == [outputs["work_role_arn"].rsplit("/", 1)[1]]
    role = iam.get_role(RoleName=profile["Roles"][0]["RoleName"])["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust["Statement"]] == [
        ("Allow", {"Service": "ec2.amazonaws.com"}, "sts:AssumeRole")]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []

    bucket = outputs["bucket"]
    assert bucket.startswith(f"lit-{STACK}-") and len(bucket) <= 63
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}


def test_up_again_and_after_an_interruption_makes_no_duplicates(outputs: dict[str, Any], engine: MotoEngine,
                                                                 config: dict[str, str], aws: Any) -> None:
    before = inventory(aws)
    assert all(len(v) >= 1 for v in before.values()), before
    assert engine.up(STACK, config, lambda _: None) == outputs
    assert inventory(aws) == before

    # An up killed mid-way: every resource was announced (pending, its name chosen) but none recorded as made.
    path = engine.state_path(STACK)
    state = json.loads(path.read_text())
    for rec in state["resources"]:
        if rec["type"] != "pulumi:providers:aws":
            rec["status"] = "pending"
            rec.pop("id", None)
            rec.pop("state", None)
    state["outputs"] = None
    path.write_text(json.dumps(state))
    assert engine.outputs(STACK) is None
    assert engine.up(STACK, config, lambda _: None) == outputs
    assert inventory(aws) == before


def test_a_role_that_cannot_be_assumed_fails_up_clearly(engine: MotoEngine, config: dict[str, str]) -> None:
    with pytest.raises(Exception, match="not an IAM role ARN"):
        engine.up("badrole", {**config, "lit:roleArn": "arn:aws:iam::1234567890:role/lai-byoc"}, lambda _: None)
    with pytest.raises(Exception, match="external ID 'x' is not valid"):
        engine.up("badrole", {**config, "lit:externalId": "x"}, lambda _: None)
    assert engine.outputs("badrole") is None


def test_iam_is_enforced_with_the_policy_lit_prints(cloud: FakeCloud, outputs: dict[str, Any]) -> None:
    """The operator may only assume the role; the role may do what `lit cluster policy` prints and no more."""
    import urllib.error
    import urllib.request

    import boto3
    import botocore.config
    import botocore.exceptions

    from tests.fakecloud import FakeCloudError

    def denied(call: Any, **kwargs: Any) -> bool:
        try:
            call(**kwargs)
        except botocore.exceptions.ClientError as exc:
            return "AccessDenied" in str(exc) or "Forbidden" in str(exc)
        return False

    key, secret = cloud.credentials()
    operator = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=cloud.region)
    assert denied(cloud.client(operator, "ec2").describe_vpcs)
    assert denied(cloud.client(operator, "s3").head_bucket, Bucket=outputs["bucket"])
    with pytest.raises(FakeCloudError, match="AccessDenied"):
        cloud.session(ROLE_ARN, "not-the-external-id")
    with pytest.raises(FakeCloudError, match="AccessDenied"):
        cloud.session("arn:aws:iam::111122223333:role/no-such-role", EXTERNAL_ID)

    role = cloud.session(ROLE_ARN, EXTERNAL_ID)
    iam, ec2 = cloud.client(role, "iam"), cloud.client(role, "ec2")
    s3 = role.client("s3", endpoint_url=cloud.endpoint, region_name=cloud.region,  # SigV4 presigned URLs, as lit's
                     config=botocore.config.Config(proxies={}, signature_version="s3v4"))
    assert not denied(ec2.describe_vpcs) and not denied(s3.get_bucket_tagging, Bucket=outputs["bucket"])
    assert denied(s3.create_bucket, Bucket="someone-elses-bucket")  # not lit-*
    assert denied(s3.list_buckets) and denied(iam.list_roles)
    assert denied(iam.create_role, RoleName="admin", AssumeRolePolicyDocument="{}")  # not under /lit/
    assert denied(iam.get_instance_profile, InstanceProfileName="not-lits")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "ec2.amazonaws.com"}}]})
    iam.create_role(RoleName="scratch-work", Path="/lit/", AssumeRolePolicyDocument=trust)
    iam.delete_role(RoleName="scratch-work")

    # Presigned URLs (how machines move files): signed by the role, checked for signature, expiry and permission.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    put = s3.generate_presigned_url("put_object", Params={"Bucket": outputs["bucket"], "Key": "p/x"}, ExpiresIn=60)
    request = urllib.request.Request(put, data=b"payload", method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": outputs["bucket"], "Key": "p/x"}, ExpiresIn=60)
    with opener.open(get, timeout=10) as response:
        assert response.read() == b"payload"
    tampered = get.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError, match="403"):
        opener.open(tampered, timeout=10)
    with pytest.raises(urllib.error.HTTPError, match="403"):  # no signature at all
        opener.open(f"{cloud.endpoint}/{outputs['bucket']}/p/x", timeout=10)
    s3.delete_object(Bucket=outputs["bucket"], Key="p/x")


def test_destroy_removes_all_but_the_bucket(outputs: dict[str, Any], engine: MotoEngine, config: dict[str, str],
                                           aws: Any) -> None:
    events: list[str] = []
    engine.destroy(STACK, config, events.append)
    left = inventory(aws)
    assert left["buckets"] == [outputs["bucket"]]
    assert {k: v for k, v in left.items() if k != "buckets" and v} == {}
    assert any("(retained)" in line and outputs["bucket"] in line for line in events), events
    assert not engine.state_path(STACK).exists()
    assert engine.outputs(STACK) is None
    engine.destroy(STACK, config, events.append)  # nothing recorded: nothing to do


@pytest.mark.root  # the bridge and its routes, from a test of its own (no fixture tells)
def test_command_line_up_status_down(tmp_path: Path) -> None:
    need_fakecloud()
    env = {**os.environ, "LIT_FAKECLOUD_DIR": str(tmp_path / "cloud"), "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tests.fakecloud", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    def guards() -> int:  # the fake clouds' unreachable routes over lit's VPC range (another cloud may be up)
        from lit.stacks import VPC_CIDR

        shown = subprocess.run(["ip", "-j", "route", "show", "type", "unreachable", VPC_CIDR], capture_output=True,
                               text=True, check=True).stdout
        return len(json.loads(shown or "[]"))

    before = guards()
    up = run("up")
    try:
        assert up.returncode == 0, up.stderr
        assert guards() == before + 1  # its own, beside any other cloud's
        exports = dict(line[len("export "):].split("=", 1) for line in up.stdout.splitlines())
        assert exports["LIT_STACK_ENGINE"] == "tests.fakecloud.engine:MotoEngine"
        assert exports["AWS_ENDPOINT_URL"].startswith("http://10.")
        assert exports["LIT_SSH_CIDR"] == exports["AWS_ENDPOINT_URL"][len("http://"):].split(":")[0] + "/32"
        recorded = json.loads((tmp_path / "cloud" / "state.json").read_text())
        status = run("status")
        assert "(running)" in status.stdout, status
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert guards() == before  # only its own is gone
    assert not (tmp_path / "cloud" / "state.json").exists()
    assert not _same_process(recorded["moto_pid"], recorded["moto_start"])


def test_the_engine_makes_only_calls_the_role_policy_table_lists(cloud: FakeCloud, config: dict[str, str],
                                                                 tmp_path: Path, aws: Any) -> None:
    """Each API call the engine makes for a resource is one provisioner/aws/policy.py lists for its type (create,
    read or update), and a new bucket is read back call for call as the provider reads it."""
    from lit.provisioner.aws.policy import STACK as TABLE

    calls = tmp_path / "calls.jsonl"
    (tmp_path / "home").mkdir()
    engine = MotoEngine(tmp_path / "home", env={**cloud.env, "LIT_FAKECLOUD_CALLS": str(calls)})
    stack = "tabled"
    settings = {**config, "lit:clusterName": stack}
    try:
        engine.up(stack, settings, lambda _: None)
        engine.up(stack, settings, lambda _: None)  # again: everything read, nothing made twice
        seen = [json.loads(line) for line in calls.read_text().splitlines()]
        outside = sorted({f"{r['what']}: {r['call']}" for r in seen
                          if r["call"] not in {c for op in ("create", "read", "update")
                                               for c in TABLE.get(r["what"], {}).get(op, ())}})
        assert not outside, outside
        made = {r["type"] for r in (engine.state(stack) or {})["resources"]}
        assert made <= {r["what"] for r in seen}, made - {r["what"] for r in seen}
        bucket_reads = [r["call"] for r in seen if r["what"] == "aws:s3/bucket:Bucket"]
        assert set(TABLE["aws:s3/bucket:Bucket"]["read"]) <= set(bucket_reads), bucket_reads
    finally:
        bucket = (engine.outputs(stack) or {}).get("bucket")
        engine.destroy(stack, settings, lambda _: None)
        if bucket:
            aws("s3").delete_bucket(Bucket=bucket)
