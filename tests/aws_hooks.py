"""AWS faults for tests, injected into a real `lit` process through botocore's event hooks.

lit registers these when LIT_BOTO_HOOKS=tests.aws_hooks:register; the faults come from LIT_TEST_AWS_FAULTS
(JSON): {"capacity": [{"type": "g5.xlarge", "subnet": "subnet-..." | "*"}],
         "quota": {"L-DB2E81BA": 0}, "start_capacity": true, "slow_boot": 3.0, "profile_not_ready": 2}

profile_not_ready: the first N RunInstances calls fail as they do while IAM has not propagated a new instance
profile to EC2.
not_found: {"StopInstances": N, "TerminateInstances": N}: the first N such calls answer InvalidInstanceID.NotFound,
and so does the first DescribeInstances after each of them, as EC2 may right after RunInstances (eventual
consistency); incorrect_state: {"StopInstances": N}: the next N answer IncorrectInstanceState (still pending).
slow_boot: every DescribeInstances of given instance ids (how lit waits for a new instance to run) takes that many
seconds more, as if the instance were still pending: a window in which the instance exists but is not ready.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


def _error(code: str, message: str) -> tuple[_Response, dict[str, Any]]:
    return _Response(400), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}


def register(events: Any) -> None:
    faults = json.loads(os.environ.get("LIT_TEST_AWS_FAULTS") or "{}")

    profile_failures = [int(faults.get("profile_not_ready", 0))]

    def decide_run(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if profile_failures[0] > 0:
            profile_failures[0] -= 1
            name = params.get("IamInstanceProfile", {}).get("Name", "")
            context["lit_fault"] = _error("InvalidParameterValue", f"Value ({name}) for parameter "
                                          "iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")
            return
        for fault in faults.get("capacity", []):
            if fault["type"] == params.get("InstanceType") and fault["subnet"] in ("*", params.get("SubnetId")):
                context["lit_fault"] = _error("InsufficientInstanceCapacity",
                                              f"We currently do not have sufficient {fault['type']} capacity")

    def decide_start(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if faults.get("start_capacity"):
            context["lit_fault"] = _error("InsufficientInstanceCapacity", "no capacity to start the instance")

    def short_circuit(context: dict[str, Any], **_: Any) -> Any:
        return context.get("lit_fault")

    def quota(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        value = faults.get("quota", {}).get(context.get("lit_quota_code", ""))
        if value is None:
            return None
        return _Response(200), {"Quota": {"ServiceCode": "ec2", "QuotaCode": context["lit_quota_code"],
                                          "Value": float(value)}, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def remember_quota(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["lit_quota_code"] = params.get("QuotaCode", "")

    def slow_boot(params: dict[str, Any], **_: Any) -> None:
        if faults.get("slow_boot") and params.get("InstanceIds"):
            time.sleep(float(faults["slow_boot"]))

    not_found = dict(faults.get("not_found", {}))
    incorrect = dict(faults.get("incorrect_state", {}))
    describe_not_found = [0]

    def not_yet(operation: str) -> Any:
        def decide(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            ids = ",".join(params.get("InstanceIds", []))
            if not_found.get(operation, 0) > 0:
                not_found[operation] -= 1
                describe_not_found[0] += 1
                context["lit_fault"] = _error("InvalidInstanceID.NotFound",
                                              f"The instance ID '{ids}' does not exist")
            elif incorrect.get(operation, 0) > 0:
                incorrect[operation] -= 1
                context["lit_fault"] = _error("IncorrectInstanceState",
                                              f"The instance '{ids}' is not in a state from which it can be stopped.")
        return decide

    def describe_not_yet(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if describe_not_found[0] > 0 and params.get("InstanceIds"):
            describe_not_found[0] -= 1
            context["lit_fault"] = _error("InvalidInstanceID.NotFound",
                                          f"The instance ID '{','.join(params['InstanceIds'])}' does not exist")

    for operation in ("StopInstances", "TerminateInstances"):
        events.register(f"before-parameter-build.ec2.{operation}", not_yet(operation))
        events.register(f"before-call.ec2.{operation}", short_circuit)
    events.register("before-parameter-build.ec2.DescribeInstances", describe_not_yet)
    events.register("before-call.ec2.DescribeInstances", short_circuit)
    events.register("before-parameter-build.ec2.RunInstances", decide_run)
    events.register("before-parameter-build.ec2.DescribeInstances", slow_boot)
    events.register("before-call.ec2.RunInstances", short_circuit)
    events.register("before-parameter-build.ec2.StartInstances", decide_start)
    events.register("before-call.ec2.StartInstances", short_circuit)
    events.register("before-parameter-build.service-quotas.GetServiceQuota", remember_quota)
    events.register("before-call.service-quotas.GetServiceQuota", quota)
