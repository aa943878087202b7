"""Unit tests of the aws provider's rules that need no cloud: what real AWS does that an emulator forgives."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support import fake_pulumi

boto3 = pytest.importorskip("boto3")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-east-1"])
def test_presigned_urls_name_the_buckets_regional_host(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The global host answers a new bucket outside us-east-1 with a 307 that breaks signed requests, and never
    serves opt-in regions (ap-east-1 is one): lit's S3 clients sign for <bucket>.s3.<region>.amazonaws.com."""
    from lit.provisioner.aws.session import s3_config

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name=region)
    s3 = session.client("s3", config=s3_config())
    for method in ("get_object", "put_object"):
        url = s3.generate_presigned_url(method, Params={"Bucket": "lit-demo-1234", "Key": "runs/r/a"}, ExpiresIn=60)
        parsed = urlparse(url)
        assert parsed.hostname == f"lit-demo-1234.s3.{region}.amazonaws.com"
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in parsed.query


FAKE_PULUMI = """#!/bin/sh
# Stands in for the pulumi CLI: records what lit's Automation API calls give it, answers the version check.
printf '%s|%s|%s\\n' "$1" "${PULUMI_CONFIG_PASSPHRASE-unset}" "${PULUMI_BACKEND_URL-unset}" >> "$FAKE_PULUMI_LOG"
if [ "$1" = version ]; then echo v3.200.0; fi
exit 0
"""


def test_stacks_use_lits_passphrase_over_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads PULUMI_CONFIG_PASSPHRASE before PULUMI_CONFIG_PASSPHRASE_FILE: a passphrase in the user's
    shell must not reach lit's stacks (a later update or destroy from another shell could not decrypt them)."""
    pytest.importorskip("pulumi")
    from lit.provisioner.engine import AutomationEngine

    log = fake_pulumi(tmp_path, monkeypatch, FAKE_PULUMI)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the-users-own")
    home = tmp_path / "home"
    engine = AutomationEngine(home)
    engine._stack("demo", {"lit:clusterName": "demo"})
    secret = (home / "pulumi" / "passphrase").read_text().strip()
    assert oct((home / "pulumi" / "passphrase").stat().st_mode & 0o777) == "0o600"
    calls = [line.split("|") for line in log.read_text().splitlines()]
    stack_calls = [c for c in calls if c[0] != "version"]
    assert stack_calls, calls
    for _, passphrase, backend in stack_calls:
        assert passphrase == secret
        assert backend == f"file://{home / 'pulumi'}"


def test_every_instance_type_is_launched_on_an_image_that_supports_it() -> None:
    from lit.provisioner.aws import catalog

    for name, types in catalog.CATALOG.items():
        for itype in types:
            spec = catalog.image_for(itype)  # raises for a type its image does not list
            if itype.gpus:
                assert spec is catalog.GPU_IMAGE and catalog.family(itype.name) in spec.families, (name, itype)
            else:
                assert spec is catalog.CPU_IMAGE, (name, itype)


def test_a_p3_type_is_refused_on_the_deep_learning_image() -> None:
    """The Deep Learning Base AMI's release notes list no P3: a catalog that paired them fails here."""
    from lit.provisioner.aws import catalog

    with pytest.raises(ValueError, match=r"p3\.2xlarge is not supported by the image"):
        catalog.image_for(catalog.InstanceType("p3.2xlarge", 8, 61, 1, "NVIDIA V100", 3.06, catalog.P_QUOTA))


def test_every_catalog_type_meets_its_compute_names_figures() -> None:
    from lit.provisioner.aws import catalog
    from lit.runtime.compute import COMPUTE_NAMES

    for name, types in catalog.CATALOG.items():
        spec = COMPUTE_NAMES[name]
        for itype in types:
            assert itype.vcpus >= spec.vcpus, (name, itype, spec)
            assert itype.memory_gib >= spec.memory_gib and itype.gpus == spec.gpus, (name, itype, spec)


def _image(name: str, date: str, size: int = 8) -> dict[str, Any]:
    return {"ImageId": f"ami-{abs(hash(name + date)) % 10**8:08d}", "Name": name, "CreationDate": date,
            "RootDeviceName": "/dev/sda1",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": size, "SnapshotId": "snap-1"}},
                                    {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}


def test_the_ubuntu_image_falls_back_to_the_older_name_series() -> None:
    from lit.provisioner.aws import catalog
    from lit.provisioner.aws.provider import pick_image

    gp2 = _image("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240301", "2024-03-01T00:00:00.000Z")
    gp3 = _image("ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-20231010", "2023-10-10T00:00:00.000Z")
    assert pick_image([gp2], catalog.CPU_IMAGE) == (gp2["ImageId"], "/dev/sda1", 8)
    # The gp3 series is preferred when a region has it, even when a gp2 image is newer.
    assert pick_image([gp2, gp3], catalog.CPU_IMAGE)[0] == gp3["ImageId"]
    assert pick_image([], catalog.CPU_IMAGE) is None


def test_the_root_volume_is_at_least_the_images_snapshot() -> None:
    from lit.provisioner.aws import catalog
    from lit.provisioner.aws.provider import pick_image

    dlami = _image("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261101", "2026-11-01", size=140)
    assert pick_image([dlami], catalog.GPU_IMAGE)[2] == 140


class _EC2:
    """Answers StopInstances/TerminateInstances/DescribeInstances from a script, as eventually consistent EC2
    does right after RunInstances (a unit test of lit's own retry seam: the calls and the answers it gets)."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def _next(self, name: str) -> Any:
        import botocore.exceptions

        self.calls.append(name)
        answer = self.answers[name].pop(0) if len(self.answers[name]) > 1 else self.answers[name][0]
        if isinstance(answer, str) and answer in ("InvalidInstanceID.NotFound", "IncorrectInstanceState"):
            raise botocore.exceptions.ClientError({"Error": {"Code": answer, "Message": "not yet"}}, name)
        return answer

    def stop_instances(self, InstanceIds: list[str]) -> Any:
        return self._next("stop_instances")

    def terminate_instances(self, InstanceIds: list[str]) -> Any:
        return self._next("terminate_instances")

    def describe_instances(self, InstanceIds: list[str]) -> Any:
        state = self._next("describe_instances")
        return {"Reservations": [{"Instances": [{"InstanceId": InstanceIds[0], "State": {"Name": state}}]}]}


def test_stop_right_after_launch_is_asked_again_until_ec2_confirms() -> None:
    from lit.provisioner.aws.provider import settle

    ec2 = _EC2({"stop_instances": ["InvalidInstanceID.NotFound", "IncorrectInstanceState", {}],
                "describe_instances": ["InvalidInstanceID.NotFound", "pending", "stopping"]})
    slept: list[float] = []
    settle(ec2, "stop_instances", ["i-0abc"], sleep=slept.append)
    assert ec2.calls.count("stop_instances") == 3 and ec2.calls[-1] == "describe_instances"
    assert slept == [0.5, 1.0]


def test_an_instance_that_never_stops_is_named_not_forgotten() -> None:
    from lit.provisioner.aws.provider import settle
    from lit.runtime.errors import InfrastructureError

    ec2 = _EC2({"stop_instances": ["IncorrectInstanceState"], "describe_instances": ["pending"]})
    with pytest.raises(InfrastructureError, match=r"i-0abc \(pending\).*terminate-instances --instance-ids i-0abc"):
        settle(ec2, "stop_instances", ["i-0abc"], seconds=3.0, sleep=lambda s: None)


def test_terminate_confirms_shutting_down() -> None:
    from lit.provisioner.aws.provider import settle

    ec2 = _EC2({"terminate_instances": ["InvalidInstanceID.NotFound", {}],
                "describe_instances": ["InvalidInstanceID.NotFound", "shutting-down"]})
    settle(ec2, "terminate_instances", ["i-0abc"], sleep=lambda s: None)
    assert ec2.calls.count("terminate_instances") == 2


def test_kept_machines_belong_to_one_app(tmp_path: Path) -> None:
    """Two apps both called app.py with the same work names are different apps; the same file run again (even
    edited) is the same app."""
    from lit.provisioner.launcher import app_identity

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "app.py", tmp_path / "b" / "app.py"
    a.write_text("x = 1\n")
    b.write_text("x = 1\n")
    first = app_identity(a)
    assert first.startswith("app-") and first != app_identity(b)
    a.write_text("x = 2\n")
    assert app_identity(a) == first


def test_lit_connects_to_the_public_address_and_works_get_the_private_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from lit.provisioner.aws.provider import AWSProvider, refuse_public_under_emulator
    from lit.provisioner.base import Machine
    from lit.runtime.errors import InfrastructureError

    instance = {"PrivateIpAddress": "10.77.0.4", "PublicIpAddress": "54.214.1.2"}
    assert AWSProvider.address(instance) == "54.214.1.2" and AWSProvider.internal_address(instance) == "10.77.0.4"
    assert AWSProvider.address({"PrivateIpAddress": "10.77.0.4"}) == "10.77.0.4"  # no public address
    # only checked, never contacted: against an emulator a public-range address is refused
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    refuse_public_under_emulator("i-1", "54.214.1.2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    refuse_public_under_emulator("i-1", "10.99.0.7")
    with pytest.raises(InfrastructureError, match=r"54\.214\.1\.2, which is not private"):
        refuse_public_under_emulator("i-1", "54.214.1.2")
    # records written before machines had two addresses read as one address for both
    old = {"id": "h1", "address": "10.0.0.5", "user": "me", "port": 22, "cpus": 2, "memory_mb": 4096, "gpus": 0,
           "state": "ready", "python": "python3"}
    assert Machine.from_dict(old).internal_address == "10.0.0.5" and Machine.from_dict(old).to_dict() == old
    two = Machine("i-1", "10.99.0.7", "ubuntu", internal_address="10.77.0.4")
    assert Machine.from_dict(two.to_dict()) == two


def test_delete_waits_through_pending_and_stopping_instances() -> None:
    """botocore's instance_terminated waiter gives up at once on an instance that is pending or stopping (its
    failure acceptors), which `lit delete cluster` meets while a run starts or stops machines: lit's own wait
    goes through those states."""
    import botocore.session

    from lit.provisioner.aws.instances import settle, wait_terminated

    model = botocore.session.get_session().get_waiter_model("ec2").get_waiter("InstanceTerminated")
    failing = {a.expected for a in model.acceptors if a.state == "failure"}
    assert {"pending", "stopping"} <= failing
    ec2 = _EC2({"terminate_instances": ["IncorrectInstanceState", {}],
                "describe_instances": ["stopping", "shutting-down", "shutting-down", "terminated"]})
    settle(ec2, "terminate_instances", ["i-0abc"], sleep=lambda s: None)
    wait_terminated(ec2, ["i-0abc"], sleep=lambda s: None)
    assert ec2.calls.count("terminate_instances") == 2 and ec2.calls.count("describe_instances") == 4
