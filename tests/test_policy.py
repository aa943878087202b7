"""The role's permissions policy (provisioner/aws/policy.py): derived from the table of calls, no broader than it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lit.provisioner.aws import policy
from lit.provisioner.aws.cluster import policies
from lit.runtime.errors import BadInput

# An ARN of each scope, as AWS would authorize a call on it.
SAMPLES = {
    policy.ANYWHERE: "*",
    policy.LIT_INSTANCES: "arn:{p}:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0",
    policy.WORK_ROLE: "arn:{p}:iam::111122223333:role/lit/demo-work-1a2b3c4",
    policy.WORK_PROFILE: "arn:{p}:iam::111122223333:instance-profile/lit/demo-work-1a2b3c4",
    policy.BUCKET: "arn:{p}:s3:::lit-demo-abcdefghijklmnopqrstuvwxyz",
    policy.OBJECTS: "arn:{p}:s3:::lit-demo-abcdefghijklmnopqrstuvwxyz/runs/r1/artifacts/out.txt",
}
# What the stack's provider reads back from a new bucket that `s3:GetBucket*` does not match.
BEYOND_GET_BUCKET = ("s3:GetAccelerateConfiguration", "s3:GetLifecycleConfiguration",
                     "s3:GetReplicationConfiguration", "s3:GetEncryptionConfiguration")


def needed() -> list[tuple[str, str, str]]:
    """(call, IAM action, scope) for every call in the tables."""
    return [(call, action, scope) for call in sorted(policy.calls()) for action, scope in policy.API[call]]


def printed(tmp_path: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two documents `lit cluster policy` prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LIT_"))}
    env.update(LIT_HOME=str(tmp_path / "home"), AWS_ACCESS_KEY_ID="none", AWS_SECRET_ACCESS_KEY="none",
               AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")  # never logged in: no call leaves
    result = subprocess.run([sys.executable, "-m", "lit", "cluster", "policy", *args], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    chunks = [chunk.split("\n", 1)[1] for chunk in result.stdout.split("# ")[1:]]
    permissions, trust = (json.loads(chunk) for chunk in chunks)
    return permissions, trust


def test_every_call_in_the_tables_says_which_iam_actions_it_needs() -> None:
    assert policy.calls() <= set(policy.API), sorted(policy.calls() - set(policy.API))
    assert set(policy.API) <= policy.calls(), f"API entries no table uses: {sorted(set(policy.API) - policy.calls())}"
    for call, permissions in policy.API.items():
        service = call.split(":")[0]
        assert permissions and all(":" in action for action, _ in permissions), call
        assert any(action.split(":")[0] == service for action, _ in permissions), call


@pytest.mark.parametrize("partition", policy.PARTITIONS)
def test_the_printed_policy_allows_every_call_of_the_tables(partition: str, tmp_path: Path) -> None:
    permissions, _ = printed(tmp_path, "--account", "444455556666", "--role-arn",
                             f"arn:{partition}:iam::111122223333:role/lit-byoc")
    assert permissions == policies(None, "444455556666", partition)[0]
    missing = [(call, action) for call, action, scope in needed()
               if not policy.allows(permissions, action, SAMPLES[scope].format(p=partition))]
    assert not missing, missing


def test_no_statement_is_broader_than_the_table() -> None:
    document = policy.permissions_policy()
    scopes = policy.permissions()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action and "?" not in action, f"a wildcard action: {action}"
        # Each statement names exactly the actions the table needs on its resources, nothing else.
        scope = next(s for s in scopes if policy.resources(s) == (
            [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]))
        assert set(statement["Action"]) == scopes[scope], scope
    # No action is allowed on a resource outside lit's own: a foreign bucket, role, profile, object.
    foreign = {policy.BUCKET: "arn:aws:s3:::someone-elses-bucket", policy.OBJECTS: "arn:aws:s3:::data/x",
               policy.WORK_ROLE: "arn:aws:iam::111122223333:role/Admin",
               policy.WORK_PROFILE: "arn:aws:iam::111122223333:instance-profile/Admin",
               policy.LIT_INSTANCES: "arn:aws:s3:::lit-x"}
    for scope, arn in foreign.items():
        for action in scopes[scope]:
            assert not policy.allows(document, action, arn), (action, arn)
    assert not policy.allows(document, "s3:GetObject", "*")
    assert not policy.allows(document, "iam:PassRole", "*")
    assert not policy.allows(document, "iam:CreateUser", "*") and not policy.allows(document, "s3:ListAllMyBuckets")


def test_instances_are_started_stopped_and_terminated_only_when_tagged_by_lit() -> None:
    statement = next(s for s in policy.permissions_policy()["Statement"] if "ec2:TerminateInstances" in s["Action"])
    assert set(statement["Action"]) == {"ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"}
    assert statement["Condition"] == {"StringLike": {"aws:ResourceTag/lit:cluster": "*"}}
    assert statement["Resource"] == ["arn:aws:ec2:*:*:instance/*"]


def test_get_bucket_star_alone_would_not_cover_the_bucket_read_back() -> None:
    """The hand-written policy had `s3:GetBucket*`: the provider's read of a new bucket then failed."""
    bucket_reads = {action for call, action, scope in needed() if scope == policy.BUCKET and ":Get" in action}
    uncovered = {action for action in bucket_reads if not policy.action_matches("s3:GetBucket*", action)}
    assert set(BEYOND_GET_BUCKET) <= uncovered, uncovered
    old = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": ["arn:aws:s3:::lit-*"], "Action": [
        "s3:CreateBucket", "s3:ListBucket", "s3:GetBucket*", "s3:PutBucketTagging", "s3:GetEncryptionConfiguration",
        "s3:PutEncryptionConfiguration"]}]}
    assert not policy.allows(old, "s3:GetReplicationConfiguration", SAMPLES[policy.BUCKET].format(p="aws"))
    assert all(policy.allows(policy.permissions_policy(), action, SAMPLES[policy.BUCKET].format(p="aws"))
               for action in BEYOND_GET_BUCKET)


def test_the_s3_calls_map_to_iam_names() -> None:
    names = {call: [a for a, _ in perms] for call, perms in policy.API.items()}
    assert names["s3:GetBucketReplication"] == ["s3:GetReplicationConfiguration"]
    assert names["s3:ListObjectsV2"] == names["s3:HeadBucket"] == ["s3:ListBucket"]
    assert names["s3:ListObjectVersions"] == ["s3:ListBucketVersions"]
    assert "s3:DeleteObject" in names["s3:DeleteObjects"]
    assert names["s3:GetBucketAccelerateConfiguration"] == ["s3:GetAccelerateConfiguration"]
    assert names["s3:GetBucketLifecycleConfiguration"] == ["s3:GetLifecycleConfiguration"]
    assert "iam:PassRole" in names["ec2:RunInstances"] and "iam:PassRole" in names["iam:AddRoleToInstanceProfile"]


def test_iam_action_matching() -> None:
    m = policy.action_matches
    assert m("s3:GetBucket*", "s3:GetBucketAcl") and m("s3:getbucket*", "S3:GETBUCKETACL")  # case-insensitive
    assert m("*", "ec2:RunInstances") and m("ec2:*", "ec2:RunInstances") and m("ec2:Run*", "ec2:RunInstances")
    assert not m("ec2:*", "s3:GetObject") and not m("s3:Get*", "ec2:GetConsoleOutput")  # the service prefix counts
    assert m("s3:Get?bject", "s3:GetObject") and not m("s3:Get?bject", "s3:GetObbject")
    assert m("ec2:*Instances", "ec2:StopInstances") and not m("ec2:*Instances", "ec2:StopInstance")
    assert not m("s3:GetBucket*", "s3:GetReplicationConfiguration")
    assert not m("s3:Get.bject", "s3:GetObject")  # a dot is a dot, not any character
    r = policy.resource_matches
    assert r("arn:aws:s3:::lit-*", "arn:aws:s3:::lit-abc") and not r("arn:aws:s3:::lit-*", "arn:aws:s3:::LIT-abc")
    assert r("arn:aws:iam::*:role/lit/*", "arn:aws:iam::111122223333:role/lit/x")
    assert not r("arn:aws:iam::*:role/lit/*", "arn:aws:iam::111122223333:role/x")
    assert not r("arn:aws:s3:::lit-*/*", "arn:aws:s3:::lit-abc")


def test_allows_follows_deny_and_not_action() -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                              {"Effect": "Deny", "Action": ["s3:Delete*"], "Resource": "arn:aws:s3:::keep"}]}
    assert policy.allows(document, "s3:DeleteObject", "arn:aws:s3:::other")
    assert not policy.allows(document, "s3:DeleteObject", "arn:aws:s3:::keep")
    assert not policy.allows({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}, "iam:GetRole")
    assert policy.allows({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}, "ec2:RunInstances")


@pytest.mark.parametrize("partition", policy.PARTITIONS)
def test_every_arn_follows_the_role_partition(partition: str, tmp_path: Path) -> None:
    permissions, trust = printed(tmp_path, "--external-id", "s3cr3t", "--account", "444455556666", "--role-arn",
                                 f"arn:{partition}:iam::111122223333:role/lit-byoc")
    arns = [r for s in permissions["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                          else s["Resource"]) if r != "*"]
    assert arns and all(arn.startswith(f"arn:{partition}:") for arn in arns), arns
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:{partition}:iam::444455556666:root"}
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": "s3cr3t"}}


def test_without_a_role_arn_the_partition_is_aws(tmp_path: Path) -> None:
    permissions, trust = printed(tmp_path, "--account", "444455556666")
    assert permissions == policy.permissions_policy("aws")
    assert trust["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::444455556666:root"}


def test_an_unknown_partition_is_refused() -> None:
    with pytest.raises(BadInput, match="partition"):
        policies(None, None, "aws-mars")


def test_every_boto3_call_in_lits_code_is_in_the_table() -> None:
    """A call added to provisioner/ without a row in policy.LIT would fail for customers (their role lacks it)."""
    import re

    root = Path(policy.__file__).resolve().parents[1]  # provisioner/

    def api(method: str) -> str:
        return "".join(part[:1].upper() + part[1:] for part in method.split("_"))

    services = {"ec2": "ec2", "s3": "s3", "quotas": "servicequotas", "sts": "sts"}
    waiters = {"instance_running", "instance_stopped", "instance_terminated"}  # they poll DescribeInstances
    found: set[str] = set()
    for path in root.rglob("*.py"):
        text = path.read_text()
        for var, service in services.items():
            for method in re.findall(rf"\b{var}\.(\w+)\(", text):
                if method not in ("get_paginator", "get_waiter", "generate_presigned_url", "assume_role"):
                    found.add(f"{service}:{api(method)}")  # assume_role: the operator's call, not the role's
            found |= {f"{service}:{api(m)}" for m in re.findall(rf"\b{var}\.get_paginator\(\"(\w+)\"", text)}
            for waiter in re.findall(rf"\b{var}\.get_waiter\(\"(\w+)\"", text):
                assert waiter in waiters, f"{path}: a waiter the table does not know: {waiter}"
                found.add("ec2:DescribeInstances")
        for method in re.findall(r"\"(put_object|get_object)\"", text):  # presigned URLs' operations
            found.add(f"s3:{api(method)}")
        for method in re.findall(r"\bsettle\(\w+, \"(\w+)\"", text):  # EC2 calls asked again until they hold
            found |= {f"ec2:{api(method)}", "ec2:DescribeInstances"}
    assert len(found) > 10, found
    assert found <= policy.calls(), sorted(found - policy.calls())
