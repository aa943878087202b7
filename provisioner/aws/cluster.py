"""`lit create/delete/list cluster` for the aws provider: validate locally, check the role, run the stack."""

from __future__ import annotations

import ipaddress
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from lit.runtime.errors import BadInput, InfrastructureError

from .. import store
from ..base import Cluster, Progress, check_cluster_name
from ..engine import load_engine
from .cloudinit import new_host_key
from .instances import cluster_session, running_instances, settle, wait_terminated
from .session import (
    RoleSession,
    check_emulator_is_private,
    check_external_id,
    check_region,
    check_role_arn,
    emulated,
    mapped_errors,
    operator_public_cidr,
)

DEFAULT_REGION = "us-east-1"


def stack_config(cluster: Cluster) -> dict[str, str]:
    s = cluster.settings
    return {"lit:clusterName": cluster.name, "lit:roleArn": s["role_arn"], "lit:externalId": s.get("external_id") or "",
            "lit:sshCidr": s["ssh_cidr"], "lit:workPolicyArns": json.dumps(s.get("work_policy_arns") or []),
            "lit:bucketName": s.get("bucket_name") or "",
            "aws:region": s["region"]}


def _ssh_cidr(given: Optional[str]) -> str:
    value = given or os.environ.get("LIT_SSH_CIDR")
    if not value:
        if emulated():
            raise BadInput("--ssh-cidr is required against an AWS emulator (AWS_ENDPOINT_URL is set); the fake "
                           "cloud exports LIT_SSH_CIDR")
        value = operator_public_cidr()
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadInput(f"--ssh-cidr {value!r} is not an address range like 203.0.113.7/32") from None
    if network.prefixlen == 0:
        raise BadInput(f"--ssh-cidr {value}: SSH from the whole internet is refused; give your address/32")
    return str(network)


def _new_bucket_name(cluster: str) -> str:
    """lit-<cluster>- (at most 37 characters, as the stack's bucket_prefix) and 26 random ones, as Terraform's."""
    import secrets
    import string

    alphabet = string.ascii_lowercase + string.digits
    return f"lit-{cluster}-"[:37] + "".join(secrets.choice(alphabet) for _ in range(26))


def _new_key(path: Path) -> str:
    """A fresh SSH key for the cluster's machines (private key 0600 under the lit home). Returns the public key."""
    private, public = new_host_key()
    store.write_private(path, private)
    store.write_private(path.with_name(path.name + ".pub"), public + "\n")
    return public


def create(name: str, role_arn: str, external_id: Optional[str], region: Optional[str], ssh_cidr: Optional[str],
           orphan_timeout: float, work_policy_arns: tuple[str, ...], progress: Progress) -> Cluster:
    """Everything is checked before anything is made; an interrupted create runs again and finishes."""
    name = check_cluster_name(name)
    account = check_role_arn(role_arn)
    external_id = check_external_id(external_id)
    region = check_region(region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                          or DEFAULT_REGION)
    for arn in work_policy_arns:
        if not arn.startswith("arn:") or ":policy/" not in arn:
            raise BadInput(f"--work-policy-arn {arn!r} is not an IAM policy ARN")
    if orphan_timeout <= 0:
        raise BadInput(f"--orphan-timeout {orphan_timeout}: must be a positive number of seconds")
    check_emulator_is_private()
    resumed = None
    if store.exists(name):
        resumed = store.load(name)
        if resumed.provider != "aws" or resumed.state == "ready":
            raise BadInput(f"cluster {name!r} already exists; delete it first with `lit delete cluster {name}`")
        if resumed.settings.get("role_arn") != role_arn or resumed.settings.get("region") != region:
            raise BadInput(f"cluster {name!r} was being created with another role or region; finish it with the same "
                           f"arguments or delete it with `lit delete cluster {name}`")
    cidr = _ssh_cidr(ssh_cidr)
    progress(f"assuming {role_arn}" + (" with an external ID" if external_id else ""))
    try:
        session = RoleSession(role_arn, external_id, region, f"lit-{name}")
        seen = session.account()
    except InfrastructureError as exc:
        raise BadInput(f"cannot assume {role_arn}: {exc}. Check the role's trust policy (`lit cluster policy`)") \
            from None
    if seen != account:
        raise BadInput(f"assuming {role_arn} gave account {seen}, not {account}")
    engine = load_engine()  # a bad engine setting is bad input too, before anything is written
    engine.check()
    directory = store.cluster_dir(name)
    key_path = directory / "id_ed25519"
    if resumed is None or not key_path.exists():
        public_key = _new_key(key_path)
    else:
        public_key = key_path.with_name("id_ed25519.pub").read_text().strip()
    # lit names the bucket (and records the name before the stack runs): a create that fails after making it
    # leaves no bucket `lit delete cluster` cannot find.
    bucket_name = (resumed.settings.get("bucket_name") if resumed else None) or _new_bucket_name(name)
    cluster = Cluster(name, "aws", (), str(key_path), float(orphan_timeout),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"), "creating",
                      {"role_arn": role_arn, "external_id": external_id or "", "region": region, "ssh_cidr": cidr,
                       "work_policy_arns": list(work_policy_arns), "account": account, "public_key": public_key,
                       "endpoint": emulated() or "", "bucket_name": bucket_name})
    store.save(cluster, "")  # the record says "creating" until the stack is up: run create again to finish
    progress(f"running the stack {name} in {region}")
    outputs = engine.up(name, stack_config(cluster), progress)
    ready = Cluster(cluster.name, "aws", (), cluster.key_path, cluster.orphan_timeout, cluster.created, "ready",
                    {**cluster.settings, "outputs": outputs})
    store.save(ready, "")
    return ready


def update(name: str, ssh_cidr: Optional[str], progress: Progress) -> Cluster:
    """Run the cluster's stack again with a new SSH range (default: this machine's address now): a laptop's
    public address changes, and SSH to the work machines is open to one address only."""
    cluster = store.load(name)
    if cluster.provider != "aws":
        raise BadInput(f"cluster {name!r} is an {cluster.provider} cluster; `lit update cluster` changes aws "
                       "clusters (an ssh cluster's hosts are yours: delete and create it again)")
    if cluster.state != "ready":
        raise BadInput(f"cluster {name!r} is still being created; finish it first with `lit create cluster {name} "
                       "...` and the same arguments")
    cidr = _ssh_cidr(ssh_cidr)
    if cidr == cluster.settings.get("ssh_cidr"):
        progress(f"SSH is already allowed from {cidr} only: nothing to change")
        return cluster
    check_emulator_is_private()
    engine = load_engine()
    engine.check()
    changed = Cluster(cluster.name, "aws", (), cluster.key_path, cluster.orphan_timeout, cluster.created, "ready",
                      {**cluster.settings, "ssh_cidr": cidr})
    progress(f"running the stack {name}: SSH from {cidr} instead of {cluster.settings.get('ssh_cidr')}")
    outputs = engine.up(name, stack_config(changed), progress)  # if it fails, the record keeps the old range
    updated = Cluster(changed.name, "aws", (), changed.key_path, changed.orphan_timeout, changed.created, "ready",
                      {**changed.settings, "outputs": outputs})
    store.save(updated, "")
    return updated


def delete(cluster: Cluster, delete_data: bool, progress: Progress) -> None:
    s = cluster.settings
    if cluster.state == "creating" and "role_arn" not in s:
        store.remove(cluster.name)
        return
    session = cluster_session(cluster)
    instances = running_instances(cluster, session)
    if instances:
        ids = [i["InstanceId"] for i in instances]
        progress(f"terminating {len(ids)} instance(s): {', '.join(ids)}")
        ec2 = session.client("ec2")
        with mapped_errors("terminating instances"):
            # Not botocore's instance_terminated waiter: it gives up at once on an instance still pending or
            # stopping, which delete must cope with (a run just started, or a machine being stopped).
            settle(ec2, "terminate_instances", ids)
            wait_terminated(ec2, ids)
    engine = load_engine()
    progress(f"destroying the stack {cluster.name}")
    engine.destroy(cluster.name, stack_config(cluster), progress)
    bucket = (s.get("outputs") or {}).get("bucket") or s.get("bucket_name")
    if bucket:
        _delete_bucket(session, bucket, delete_data, progress)
    store.remove(cluster.name)


def _delete_bucket(session: RoleSession, bucket: str, delete_data: bool, progress: Progress) -> None:
    import botocore.exceptions

    s3 = session.client("s3")
    try:
        listing = s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            return
        raise
    if listing.get("KeyCount", 0) and not delete_data:
        progress(f"kept the bucket {bucket}: it still holds data (pass --delete-data to delete it too)")
        return
    with mapped_errors(f"deleting the bucket {bucket}"):
        if listing.get("KeyCount", 0):
            progress(f"deleting the data in {bucket}")
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                objects = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                           for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if objects:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
        progress(f"deleted the bucket {bucket}")


def policies(external_id: Optional[str], operator_account: Optional[str],
             partition: str = "aws") -> tuple[dict[str, Any], dict[str, Any]]:
    """The permissions the customer's role needs (derived in policy.py from what the stack's provider and lit call
    with it) and its trust policy, with ARNs in the role's partition (aws, aws-cn, aws-us-gov)."""
    from .policy import permissions_policy, trust_policy

    try:
        return permissions_policy(partition), trust_policy(external_id, operator_account, partition)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
