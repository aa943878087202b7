"""`lit create/list/delete cluster --provider aws` end to end in the fake cloud (moto server + the stack
program under mocks, IAM enforced). Everything is checked in moto through the fake cloud's admin user (the
customer's role may do only what `lit cluster policy` prints: not list roles), never through lit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud import FakeCloud, fakecloud_fixture, requirement
from tests.support import require, wait_for

ROLE = "arn:aws:iam::111122223333:role/lit-byoc"
EXTERNAL_ID = "lit-test-external-id"


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    require(requirement(), "the fake cloud")
    yield from fakecloud_fixture()


class Lit:
    def __init__(self, cloud: FakeCloud, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **cloud.env,
                    "LIT_HOME": str(self.home)}
        self.tmp = tmp_path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lit", *args], capture_output=True, text=True, env=self.env,
                              cwd=self.tmp, timeout=timeout)

    def create(self, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self("create", "cluster", name, "--provider", "aws", "--role-arn", ROLE, "--external-id",
                    EXTERNAL_ID, *extra)

    def record(self, name: str) -> dict[str, Any]:
        return json.loads((self.home / "clusters" / name / "cluster.json").read_text())


@pytest.fixture
def lit(cloud: FakeCloud, tmp_path: Path) -> Lit:
    return Lit(cloud, tmp_path)


@pytest.fixture
def aws(cloud: FakeCloud) -> Any:
    session = cloud.admin_session()
    return lambda service: cloud.client(session, service)


def tagged(name: str) -> list[dict[str, Any]]:
    return [{"Name": "tag:lit:cluster", "Values": [name]}]


def live_instances(aws: Any, name: str) -> list[str]:
    reservations = aws("ec2").describe_instances(Filters=[
        *tagged(name), {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"]]


def stack_resources(aws: Any, name: str) -> dict[str, int]:
    ec2, iam = aws("ec2"), aws("iam")
    roles = [r for r in iam.list_roles(PathPrefix="/lit/")["Roles"] if r["RoleName"].startswith(f"{name}-")]
    return {"vpcs": len(ec2.describe_vpcs(Filters=tagged(name))["Vpcs"]),
            "subnets": len(ec2.describe_subnets(Filters=tagged(name))["Subnets"]),
            "groups": len(ec2.describe_security_groups(Filters=tagged(name))["SecurityGroups"]),
            "roles": len(roles)}


def test_create_list_delete_leaves_nothing_but_a_bucket_with_data(lit: Lit, aws: Any) -> None:
    created = lit.create("demo")
    assert created.returncode == 0, created.stderr
    assert "created cluster demo in us-east-1" in created.stdout
    record = lit.record("demo")
    assert record["state"] == "ready" and record["provider"] == "aws"
    assert record["settings"]["external_id"] == EXTERNAL_ID
    outputs = record["settings"]["outputs"]
    assert stack_resources(aws, "demo") == {"vpcs": 1, "subnets": len(outputs["subnet_ids"]), "groups": 1,
                                            "roles": 1}
    assert oct((lit.home / "clusters" / "demo" / "id_ed25519").stat().st_mode & 0o777) == "0o600"
    assert "BEGIN" not in json.dumps(record)  # no secret in the record

    # A work machine left behind (as a crashed run would), and data in the bucket.
    ec2 = aws("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "lit:cluster", "Value": "demo"}]}]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                      SubnetId=outputs["subnet_ids"][0], TagSpecifications=tags)
    aws("s3").put_object(Bucket=outputs["bucket"], Key="results/model.bin", Body=b"weights")

    listed = lit("list", "clusters")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "demo" in line)
    assert "aws" in row and "us-east-1" in row and "1 instances" in row and "ready" in row

    deleted = lit("delete", "cluster", "demo", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "terminating 1 instance" in deleted.stderr
    assert f"kept the bucket {outputs['bucket']}: it still holds data" in deleted.stderr
    assert live_instances(aws, "demo") == []
    assert stack_resources(aws, "demo") == {"vpcs": 0, "subnets": 0, "groups": 0, "roles": 0}
    kept = aws("s3").get_object(Bucket=outputs["bucket"], Key="results/model.bin")["Body"].read()
    assert kept == b"weights"  # never lose user data
    assert not (lit.home / "clusters" / "demo").exists()


def test_delete_data_removes_the_bucket_too(lit: Lit, aws: Any) -> None:
    assert lit.create("scratch").returncode == 0
    bucket = lit.record("scratch")["settings"]["outputs"]["bucket"]
    aws("s3").put_object(Bucket=bucket, Key="a", Body=b"x")
    refused = lit("delete", "cluster", "scratch")  # no terminal and no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    deleted = lit("delete", "cluster", "scratch", "--yes", "--delete-data")
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted the bucket {bucket}" in deleted.stderr
    assert bucket not in [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]


def test_update_opens_ssh_to_a_new_address_and_closes_the_old(lit: Lit, aws: Any, tmp_path: Path) -> None:
    """A laptop's public address changes: `lit update cluster` moves the one SSH rule to the new address."""
    assert lit.create("moving").returncode == 0
    old = lit.record("moving")["settings"]["ssh_cidr"]
    group_id = lit.record("moving")["settings"]["outputs"]["security_group_id"]

    def ssh_sources() -> list[str]:
        group = aws("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        return sorted(r["CidrIp"] for p in group["IpPermissions"] if p.get("FromPort") == 22 for r in p["IpRanges"])

    assert ssh_sources() == [old]
    moved = lit("update", "cluster", "moving", "--ssh-cidr", "10.99.0.7")
    assert moved.returncode == 0, moved.stderr
    assert "SSH to its machines from 10.99.0.7/32" in moved.stdout
    assert ssh_sources() == ["10.99.0.7/32"]
    record = lit.record("moving")
    assert record["settings"]["ssh_cidr"] == "10.99.0.7/32" and record["state"] == "ready"
    assert record["settings"]["outputs"]["security_group_id"] == group_id  # the same group, changed in place
    again = lit("update", "cluster", "moving", "--ssh-cidr", "10.99.0.7/32")
    assert again.returncode == 0 and "nothing to change" in again.stderr
    # Bad input: one line, exit 2, nothing changed.
    for args, words in ((("moving", "--ssh-cidr", "0.0.0.0/0"), "whole internet"),
                        (("moving", "--ssh-cidr", "ten"), "not an address range"),
                        (("nosuch",), "nosuch")):
        refused = lit("update", "cluster", *args)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert ssh_sources() == ["10.99.0.7/32"]
    assert lit("delete", "cluster", "moving", "--yes", "--delete-data").returncode == 0


def test_an_interrupted_create_runs_again_and_finishes(lit: Lit, aws: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lit", "create", "cluster", "halfway", "--provider", "aws",
                             "--role-arn", ROLE, "--external-id", EXTERNAL_ID], env=lit.env, cwd=lit.tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = lit.home / "fakecloud-stacks" / "halfway.json"

    def recorded() -> int:
        try:
            return len(json.loads(state.read_text()).get("resources", []))
        except (OSError, ValueError):
            return 0

    wait_for(lambda: recorded() >= 4, 60, "the stack to record 4 resources")
    os.killpg(proc.pid, signal.SIGKILL)  # Ctrl-C at the worst moment, or a closed laptop
    proc.wait()
    assert lit.record("halfway")["state"] == "creating"
    again = lit.create("halfway")
    assert again.returncode == 0, again.stderr
    assert lit.record("halfway")["state"] == "ready"
    assert stack_resources(aws, "halfway")["vpcs"] == 1  # finished, and nothing made twice
    assert lit("delete", "cluster", "halfway", "--yes").returncode == 0


def test_bad_input_creates_nothing(lit: Lit, aws: Any) -> None:
    before = stack_resources(aws, "bad")
    for args, expected in [
        (["--role-arn", "arn:aws:iam::1234567890:role/lai-byoc"], "has 10 digits"),
        (["--role-arn", ROLE, "--region", "nowhere-1"], "is not an AWS region"),
        (["--role-arn", ROLE, "--external-id", "x"], "external IDs are 2-1224 characters"),
    ]:
        result = lit("create", "cluster", "bad", "--provider", "aws", *args)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
    result = lit("create", "cluster", "Bad_Name", "--provider", "aws", "--role-arn", ROLE)
    assert result.returncode == 2 and "invalid cluster name" in result.stderr
    result = lit("run", str(Path(__file__).parent.parent / "examples" / "hello_app.py"), "--cloud", "nope")
    assert result.returncode == 2 and "no cluster named 'nope'" in result.stderr
    assert stack_resources(aws, "bad") == before
    assert not (lit.home / "clusters" / "bad").exists()


def test_a_role_that_cannot_be_assumed_is_refused_before_anything_is_made(lit: Lit, monkeypatch: Any) -> None:
    # The refusal AWS gives (AccessDenied) made with botocore's own Stubber on STS, through lit's session code,
    # in this process (the fake cloud refuses for real too: the next test).
    from botocore.stub import Stubber

    from lit.provisioner.aws import session as aws_session
    from lit.runtime.errors import BadInput

    real_client = aws_session.boto3_module().session.Session.client

    def client(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(self, service, *args, **kwargs)
        if service == "sts":
            stub = Stubber(made)
            stub.add_client_error("assume_role", service_error_code="AccessDenied",
                                  service_message=f"User is not authorized to perform: sts:AssumeRole on {ROLE}")
            stub.activate()
        return made

    monkeypatch.setattr(aws_session.boto3_module().session.Session, "client", client)
    for key, value in lit.env.items():
        monkeypatch.setenv(key, value)
    from lit.provisioner.aws import cluster as aws_cluster

    with pytest.raises(BadInput, match=r"cannot assume .*AccessDenied.*lit cluster policy"):
        aws_cluster.create("denied", ROLE, EXTERNAL_ID, "us-east-1", None, 120, (), lambda step: None)
    assert not (lit.home / "clusters" / "denied").exists()


def test_the_fake_cloud_refuses_an_assume_role_its_trust_policy_refuses(lit: Lit, aws: Any) -> None:
    """The trust policy `lit cluster policy` printed requires the external ID: moto enforces it here."""
    for extra in (["--external-id", "not-the-one"], []):
        result = lit("create", "cluster", "untrusted", "--provider", "aws", "--role-arn", ROLE, *extra)
        assert result.returncode == 2, result.stderr
        assert "cannot assume" in result.stderr and "AccessDenied" in result.stderr, result.stderr
    assert not (lit.home / "clusters" / "untrusted").exists()


def test_a_policy_missing_what_the_provider_reads_fails_create_and_delete_cleans_up(
        cloud: FakeCloud, lit: Lit, aws: Any) -> None:
    """The role's permissions are exactly `lit cluster policy`'s but s3:GetReplicationConfiguration (what the
    provider reads back from a new bucket, which `s3:GetBucket*` does not cover): create fails on the bucket, and
    `lit delete cluster` then removes everything it made, the bucket too."""
    from tests.fakecloud.server import lit_policies

    reduced_role = "arn:aws:iam::111122223333:role/lit-byoc-reduced"
    permissions, _ = lit_policies(EXTERNAL_ID, reduced_role)
    for statement in permissions["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "s3:GetReplicationConfiguration"]
    cloud.create_role(reduced_role, EXTERNAL_ID, permissions)

    failed = lit("create", "cluster", "halfmade", "--provider", "aws", "--role-arn", reduced_role, "--external-id",
                 EXTERNAL_ID)
    assert failed.returncode != 0, failed.stdout
    assert "GetBucketReplication" in failed.stderr and "AccessDenied" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    record = lit.record("halfmade")
    assert record["state"] == "creating"
    bucket = record["settings"]["bucket_name"]
    assert bucket.startswith("lit-halfmade-")
    aws("s3").head_bucket(Bucket=bucket)  # made before the read-back failed
    assert stack_resources(aws, "halfmade")["vpcs"] == 1

    deleted = lit("delete", "cluster", "halfmade", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert stack_resources(aws, "halfmade") == {"vpcs": 0, "subnets": 0, "groups": 0, "roles": 0}
    assert bucket not in [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]
    profiles = aws("iam").list_instance_profiles(PathPrefix="/lit/")["InstanceProfiles"]
    assert not [p for p in profiles if p["InstanceProfileName"].startswith("halfmade-")]
    assert not (lit.home / "clusters" / "halfmade").exists()


def test_without_the_pulumi_cli_the_real_engine_says_how_to_install_it(lit: Lit) -> None:
    lit.env.pop("LIT_STACK_ENGINE")  # the Automation API engine, which drives the pulumi CLI (absent here)
    lit.env["PATH"] = "/usr/bin:/bin"
    result = lit.create("nocli")
    assert result.returncode == 2, result.stderr
    assert "the pulumi CLI is not installed" in result.stderr and "get.pulumi.com" in result.stderr
    assert not (lit.home / "clusters" / "nocli").exists()  # refused before anything was written or made
