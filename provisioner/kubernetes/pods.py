"""A work's pod: its manifest (resources from the compute table, labels, the run's owner), waiting until it runs
(with the scheduler's reason while it waits), why it went under a running work, and deleting it."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from lit.runtime.compute import COMPUTE_NAMES, CloudCompute
from lit.runtime.errors import InfrastructureError
from lit.stacks.kubernetes.objects import label_value, object_name

from .client import Api, kubernetes_module, mapped, message_of
from .watch import PodWatch

MANAGED = {"app.kubernetes.io/managed-by": "lit"}
GPU_RESOURCE = "nvidia.com/gpu"
HOME = "/tmp/lit-home"  # an emptyDir: lit's files in the pod, writable whatever the image's user and root filesystem
# The pod's first process: waits until it is told to end. An orphaned agent ends its pod with `kill 1` (its
# poweroff command), so the pod ends and, with restartPolicy Never, is not started again.
KEEP_ALIVE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
# Waiting reasons of a container that will not start by waiting longer (kubelet's image and config errors).
QUOTA_RETRY_SECONDS = 1.0  # a pod refused over the namespace's quota is asked for again this often
HOPELESS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                      "CreateContainerError", "RunContainerError"})


def labels(cluster: str, run_id: str = "", work: str = "") -> dict[str, str]:
    out = {**MANAGED, "lit/cluster": label_value(cluster)}
    if run_id:
        out["lit/run"] = label_value(run_id)
    if work:
        out["lit/work"] = label_value(work)
    return out


def resources(compute: CloudCompute) -> dict[str, Any]:
    spec = COMPUTE_NAMES[compute.name]
    requests = {"cpu": str(spec.vcpus), "memory": f"{spec.memory_gib}Gi"}
    limits: dict[str, str] = {"memory": f"{spec.memory_gib}Gi"}
    if spec.gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(spec.gpus)  # extended resources: requests == limits
    return {"requests": requests, "limits": limits}


def pod_manifest(name: str, cluster: str, run_id: str, work: str, compute: CloudCompute, image: str,
                 service_account: str, owner: dict[str, Any], node_selector: Optional[dict[str, str]] = None
                 ) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,  # works hold no API credentials
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "containers": [{
            "name": "work", "image": image, "command": ["sh", "-c", KEEP_ALIVE],
            "env": [{"name": "HOME", "value": HOME}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
            "workingDir": HOME, "resources": resources(compute),
            "volumeMounts": [{"name": "lit-home", "mountPath": HOME}],
        }],
        "volumes": [{"name": "lit-home", "emptyDir": {}}],
    }
    if COMPUTE_NAMES[compute.name].gpus:
        # GPU nodes are commonly tainted so that only GPU pods land there (the device plugin's convention).
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels(cluster, run_id, work), "ownerReferences": [owner]},
            "spec": spec}


def run_owner(api: Api, cluster: str, run_id: str) -> dict[str, Any]:
    """The run's one object (a ConfigMap) that owns its pods: deleting it lets the garbage collector remove them."""
    kubernetes = kubernetes_module()
    name = object_name("lit-run", cluster, run_id)
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels(cluster, run_id)}, "data": {"run": run_id}}
    with mapped(f"making the run's object {name}"):
        try:
            made = api.core.create_namespaced_config_map(api.namespace, body)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
            made = api.core.read_namespaced_config_map(name, api.namespace)
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": made.metadata.uid,
            "blockOwnerDeletion": False}


def create(api: Api, manifest: dict[str, Any], pending_timeout: float, progress: Callable[[str], None],
           cancelled: Callable[[], bool] = lambda: False) -> bool:
    """Make the pod. Over the namespace's ResourceQuota (`--max-gpus`) the API server refuses it (403, "exceeded
    quota": the ResourceQuota admission plugin); like a pod the scheduler cannot place yet, it waits, with that
    reason, until the quota has room (another work's pod went) or `pending_timeout` seconds passed. False: it was
    cancelled before the pod was made."""
    name = manifest["metadata"]["name"]
    deadline = time.monotonic() + pending_timeout
    said = ""
    while True:
        with mapped(f"making pod {name}"):
            reason = _over_quota(lambda: api.core.create_namespaced_pod(api.namespace, manifest))
        if reason is None:
            return True
        if reason != said:
            progress(f"pending: {reason}")
            said = reason
        if time.monotonic() > deadline:
            raise InfrastructureError(f"pod {name} was refused for {pending_timeout:.0f} s: {reason}")
        retry_at = time.monotonic() + QUOTA_RETRY_SECONDS
        while time.monotonic() < retry_at:
            if cancelled():
                return False
            time.sleep(0.1)


def _over_quota(create: Callable[[], Any]) -> Optional[str]:
    """None once made; the API server's message when it refused over the quota; any other refusal raised."""
    kubernetes = kubernetes_module()
    try:
        create()
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status == 403 and "exceeded quota" in message_of(exc):
            return message_of(exc)
        raise
    return None


def wait_running(watch: PodWatch, name: str, pending_timeout: float, progress: Callable[[str], None],
                 cancelled: Callable[[], bool] = lambda: False) -> Optional[Any]:
    """Until the pod runs (its IP known), from the run's pod watch; None if cancelled first. While it waits, the
    scheduler's or kubelet's reason is shown once per change; a reason that waiting cannot cure, a failed or
    deleted pod, or `pending_timeout` seconds unscheduled raise."""
    said = [""]

    def seen(pod: Optional[Any], deleted: bool) -> None:
        if deleted:
            raise InfrastructureError(f"pod {name} was deleted before its work started: {why_gone(pod)}")
        if pod is None:
            return
        phase = pod.status.phase or "Pending"
        if phase in ("Failed", "Succeeded"):
            raise InfrastructureError(f"pod {name} ended before its work started: {why_ended(pod)}")
        reason = pending_reason(pod)
        if reason and reason != said[0]:
            progress(f"pending: {reason}")
            said[0] = reason
        waiting = container_waiting(pod)
        if waiting is not None and waiting[0] in HOPELESS:
            raise InfrastructureError(f"pod {name} cannot start: {waiting[0]}: {waiting[1]}")

    def running(pod: Optional[Any], deleted: bool) -> bool:
        return pod is not None and pod.status.phase == "Running" and bool(pod.status.pod_ip)

    if not watch.wait(name, running, pending_timeout, seen, cancelled):
        if cancelled():
            return None
        cause = said[0] or (f"the pod watch failed: {watch.error}" if watch.error else "")
        raise InfrastructureError(f"pod {name} did not start within {pending_timeout:.0f} s"
                                  + (f": {cause}" if cause else ""))
    pod, _ = watch.state(name)
    return pod


def lost(watch: PodWatch, name: str, settle: float) -> Optional[str]:
    """Why the pod under a running work is gone or going (evicted, deleted by someone, its container ended), or
    None; waits up to `settle` seconds for the API server to say (a dropped exec stream can come first)."""
    def ended(pod: Optional[Any], deleted: bool) -> bool:
        return deleted or (pod is not None and (pod.metadata.deletion_timestamp is not None
                                                or pod.status.phase in ("Failed", "Succeeded")))

    watch.wait(name, ended, settle)
    pod, deleted = watch.state(name)
    if deleted:
        return f"pod {name} was deleted: {why_gone(pod)}"
    if pod is None:
        return None
    if pod.status.phase in ("Failed", "Succeeded"):
        return f"pod {name} ended: {why_ended(pod)}"
    if pod.metadata.deletion_timestamp is not None:
        return f"pod {name} is being deleted: {why_gone(pod)}"
    return None


def why_gone(pod: Optional[Any]) -> str:
    """Why a pod was deleted, as far as it says: the DisruptionTarget condition Kubernetes adds when it evicts
    or preempts a pod (reason and message), else how it ended, else that someone else deleted it."""
    if pod is None:
        return "deleted by someone other than lit"
    for condition in pod.status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return f"{condition.reason}: {condition.message}".strip(": ")
    if pod.status.phase in ("Failed", "Succeeded"):
        return why_ended(pod)
    return "deleted by someone other than lit"


def pending_reason(pod: Any) -> str:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.message:
            return str(condition.message)
    waiting = container_waiting(pod)
    return f"{waiting[0]}: {waiting[1]}" if waiting is not None else ""


def container_waiting(pod: Any) -> Optional[tuple[str, str]]:
    for container in pod.status.container_statuses or []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason and waiting.reason != "ContainerCreating":
            return str(waiting.reason), str(waiting.message or "")
    return None


def why_ended(pod: Any) -> str:
    """Kubernetes' reason a pod ended: evicted, OOMKilled, the exit code."""
    status = pod.status
    if status.reason:
        return f"{status.reason}: {status.message or ''}".strip(": ")
    for container in status.container_statuses or []:
        terminated = container.state.terminated if container.state is not None else None
        if terminated is not None:
            return f"{terminated.reason or 'exited'} (exit code {terminated.exit_code})"
    return status.phase or "unknown"


def delete(api: Api, name: str, watch: Optional[PodWatch] = None, wait: float = 0.0) -> None:
    """Delete the pod (gone already is fine); with a watch and `wait`, until the API no longer has it."""
    kubernetes = kubernetes_module()
    with mapped(f"deleting pod {name}"):
        try:
            api.core.delete_namespaced_pod(name, api.namespace, grace_period_seconds=1)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            return
    if watch is None or not wait:
        return
    if not watch.wait(name, lambda pod, deleted: deleted or pod is None, wait):
        why = f" (the pod watch failed: {watch.error})" if watch.error else ""
        raise InfrastructureError(f"pod {name} was still there {wait:.0f} s after it was deleted{why}")
