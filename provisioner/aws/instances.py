"""Stopping, terminating and finding a cluster's instances, through EC2's eventual consistency.

EC2 is eventually consistent (EC2 API reference, "Eventual consistency in the Amazon EC2 API"): right after
RunInstances, StopInstances or TerminateInstances may answer InvalidInstanceID.NotFound ("does not mean the instance
was or will be terminated") and a pending instance answers StopInstances with IncorrectInstanceState. lit asks
again until DescribeInstances confirms.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from lit.runtime.errors import InfrastructureError

from ..base import Cluster
from ..retry import retry
from .session import RoleSession, mapped_errors

SETTLE_SECONDS = 600.0  # how long a stop or terminate is asked again before lit names the instance
NOT_YET = frozenset({"InvalidInstanceID.NotFound", "IncorrectInstanceState"})
LIVE = ["pending", "running", "stopping", "stopped"]
# What each call is waiting for: the states that confirm it took effect.
SETTLED = {"stop_instances": ("stopping", "stopped"), "terminate_instances": ("shutting-down", "terminated")}


class _NotSettled(Exception):
    def __init__(self, pending: list[str], states: dict[str, str]) -> None:
        super().__init__(", ".join(pending))
        self.pending = pending
        self.states = states


def settle(ec2: Any, call: str, instance_ids: list[str], seconds: float = SETTLE_SECONDS,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """StopInstances or TerminateInstances, asked again until DescribeInstances confirms it for every instance.

    An instance lit cannot yet see (InvalidInstanceID.NotFound right after it was made) or that cannot take the
    call yet (IncorrectInstanceState: still pending) is asked again with backoff; an instance never seen for
    `seconds` raises, naming it, so no machine is quietly left running."""
    import botocore.exceptions

    wanted = SETTLED[call]
    pending = list(instance_ids)

    def attempt() -> None:
        nonlocal pending
        try:
            getattr(ec2, call)(InstanceIds=pending)  # `call` is one of SETTLED's two names
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in NOT_YET:
                raise
        states = _states(ec2, pending)
        pending = [i for i in pending if states.get(i) not in wanted]
        if pending:
            raise _NotSettled(pending, states)

    try:
        retry(attempt, retry_if=(_NotSettled,), deadline=time.monotonic() + seconds, first_delay=0.5, sleep=sleep)
    except _NotSettled as exc:
        seen = ", ".join(f"{i} ({exc.states.get(i, 'not visible')})" for i in exc.pending)
        raise InfrastructureError(f"{call} did not take effect within {seconds:.0f} s for {seen}; check the EC2 "
                                  "console and remove it with: aws ec2 terminate-instances --instance-ids "
                                  + " ".join(exc.pending)) from None


def wait_terminated(ec2: Any, instance_ids: list[str], seconds: float = SETTLE_SECONDS,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Until every instance is terminated (the security group and subnets can only go after that)."""

    def attempt() -> None:
        states = _states(ec2, instance_ids)
        left = [i for i in instance_ids if states.get(i, "terminated") != "terminated"]
        if left:
            raise _NotSettled(left, states)

    try:
        retry(attempt, retry_if=(_NotSettled,), deadline=time.monotonic() + seconds, first_delay=2.0, factor=1.0,
              max_delay=2.0, sleep=sleep)
    except _NotSettled as exc:
        raise InfrastructureError(f"still not terminated after {seconds:.0f} s: "
                                  + ", ".join(f"{i} ({exc.states[i]})" for i in exc.pending)) from None


def _states(ec2: Any, instance_ids: list[str]) -> dict[str, str]:
    """Each instance's state as DescribeInstances sees it now (instances it does not see yet are left out)."""
    import botocore.exceptions

    states = {}
    for instance_id in instance_ids:  # one by one: one id not visible yet fails a call that names several
        try:
            reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            continue
        for reservation in reservations:
            for instance in reservation["Instances"]:
                states[instance["InstanceId"]] = instance["State"]["Name"]
    return states


def cluster_session(cluster: Cluster) -> RoleSession:
    s = cluster.settings
    return RoleSession(s["role_arn"], s.get("external_id"), s["region"], f"lit-{cluster.name}")


def running_instances(cluster: Cluster, session: Optional[RoleSession] = None) -> list[dict[str, Any]]:
    """Instances tagged for the cluster, found in AWS (tags are the truth), not terminated."""
    ec2 = (session or cluster_session(cluster)).client("ec2")
    found = []
    with mapped_errors(f"listing instances of {cluster.name}"):
        pages = ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "tag:lit:cluster", "Values": [cluster.name]},
            {"Name": "instance-state-name", "Values": LIVE}])
        for page in pages:
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
    return found
