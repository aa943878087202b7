"""The aws provider's input checks and policy printing: no cloud is contacted for any of these."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARN = "arn:aws:iam::111122223333:role/lit-byoc"


def lit(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Credentials that lead nowhere: nothing here may reach AWS (bad input is refused before any call).
    environ.update({"LIT_HOME": str(tmp_path / "home"), "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", **env})
    return subprocess.run([sys.executable, "-m", "lit", *args], capture_output=True, text=True, env=environ,
                          timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("args", "expected"), [
    (["--role-arn", "arn:aws:iam::1234567890:role/lai-byoc"], "has 10 digits; AWS account IDs have 12"),
    (["--role-arn", "arn:aws:iam:123456789012:role/x"], "is not an IAM role ARN"),
    (["--role-arn", "arn:aws:iam::123456789012:user/x"], "is not an IAM role ARN"),
    (["--role-arn", ARN, "--region", "mars-1"], "--region 'mars-1' is not an AWS region"),
    (["--role-arn", ARN, "--ssh-cidr", "0.0.0.0/0", "--region", "us-east-1"], "SSH from the whole internet"),
    (["--role-arn", ARN, "--ssh-cidr", "not-an-address", "--region", "us-east-1"], "is not an address range"),
    (["--role-arn", ARN, "--region", "us-east-1"], "--ssh-cidr is required against an AWS emulator"),
    ([], "--role-arn is required"),
])
def test_bad_aws_input_is_one_clear_line_exit_2_and_nothing_created(tmp_path: Path, args: list[str],
                                                                    expected: str) -> None:
    result = lit(tmp_path, "create", "cluster", "demo", "--provider", "aws", *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "home" / "clusters" / "demo").exists()


def test_bad_cluster_name_and_unknown_cluster(tmp_path: Path) -> None:
    result = lit(tmp_path, "create", "cluster", "bad-", "--provider", "aws", "--role-arn", ARN)
    assert result.returncode == 2 and "invalid cluster name 'bad-'" in result.stderr
    result = lit(tmp_path, "create", "cluster", "x" * 64, "--provider", "aws", "--role-arn", ARN)
    assert result.returncode == 2 and "invalid cluster name" in result.stderr
    result = lit(tmp_path, "delete", "cluster", "nope", "--yes")
    assert result.returncode == 2 and "no cluster named 'nope'" in result.stderr


def test_update_refuses_what_it_cannot_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lit update cluster` changes aws clusters that are whole; anything else is one line, exit 2, no change."""
    from lit.provisioner import store
    from lit.provisioner.base import Cluster, Machine

    monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
    store.save(Cluster("hosts", "ssh", (Machine("h1", "10.0.0.5", "me"),), "/dev/null", 120.0, "", "ready", {}), "")
    store.save(Cluster("halfway", "aws", (), "/dev/null", 120.0, "", "creating",
                       {"role_arn": ARN, "region": "us-east-1", "ssh_cidr": "10.0.0.1/32"}), "")
    records = {name: (tmp_path / "home" / "clusters" / name / "cluster.json").read_text()
               for name in ("hosts", "halfway")}
    for name, expected in (("hosts", "is an ssh cluster"), ("halfway", "still being created"),
                           ("nope", "no cluster named 'nope'")):
        result = lit(tmp_path, "update", "cluster", name, "--ssh-cidr", "10.0.0.9/32")
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {name: (tmp_path / "home" / "clusters" / name / "cluster.json").read_text() for name in records} == records


def test_policy_is_least_privilege_with_the_external_id_in_the_trust(tmp_path: Path) -> None:
    result = lit(tmp_path, "cluster", "policy", "--external-id", "s3cr3t", "--account", "444455556666")
    assert result.returncode == 0, result.stderr
    documents = [json.loads(chunk) for chunk in result.stdout.split("# ")[1:] for chunk in [chunk.split("\n", 1)[1]]]
    permissions, trust = documents
    actions = {a for s in permissions["Statement"] for a in s["Action"]}
    assert "ec2:RunInstances" in actions and "iam:PassRole" in actions and "s3:CreateBucket" in actions
    assert not any(a.endswith(":*") or a == "*" for a in actions)  # no wildcard services
    scoped = next(s for s in permissions["Statement"] if "ec2:TerminateInstances" in s["Action"])
    assert "aws:ResourceTag/lit:cluster" in json.dumps(scoped["Condition"])
    iam = next(s for s in permissions["Statement"] if "iam:PassRole" in s["Action"])
    assert all("/lit/" in r for r in iam["Resource"])  # only the work role lit makes
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::444455556666:root"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "s3cr3t"}}
