"""`lit create/delete cluster --provider kubernetes` and what it needs of the cluster: the user's rights checked
with SelfSubjectAccessReview before anything is made, lit's namespaced objects applied by the stack engine from
the Pulumi program in stacks/kubernetes, and the per-run objects (owner, network policy)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any, Optional

from lit.runtime.errors import BadInput, InfrastructureError
from lit.stacks.kubernetes import PROGRAM, PROJECT, SECRET_KEYS

from .. import store
from ..base import Cluster, Options, Progress, check_cluster_name
from ..engine import load_engine
from .client import Api, connect, kubernetes_module, mapped
from .pods import GPU_RESOURCE, label_value

DEFAULT_IMAGE = "python:3.12-slim"  # sh, python3 with venv; Debian's, as lit's hosts

# What the stack engine runs for a kubernetes cluster (its own Pulumi project; the kubeconfig kept secret).
STACK = {"program": PROGRAM, "project": PROJECT, "secret_keys": SECRET_KEYS}


def selector(cluster: str) -> str:
    return f"app.kubernetes.io/managed-by=lit,lit/cluster={label_value(cluster)}"


def stack_config(cluster: Cluster) -> dict[str, str]:
    s = cluster.settings
    return {"lit:clusterName": cluster.name, "lit:namespace": s["namespace"], "lit:kubeconfig": s.get("kubeconfig", ""),
            "lit:context": s["context"], "lit:maxGpus": str(s.get("max_gpus") or "")}


def check_access(api: Api) -> None:
    """Every verb lit needs, asked of the API server for this user (SelfSubjectAccessReview: allowed to every
    authenticated user by Kubernetes' bootstrap policy). Missing ones are bad input, listed, before anything."""
    from lit.stacks.kubernetes.rbac import REQUIRED

    kubernetes = kubernetes_module()
    missing = []
    for verb, group, resource, subresource in REQUIRED:
        review = kubernetes.client.V1SelfSubjectAccessReview(spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                namespace=api.namespace, verb=verb, group=group, resource=resource, subresource=subresource or None)))
        with mapped("checking your permissions (SelfSubjectAccessReview)"):
            answer = api.authorization.create_self_subject_access_review(review)
        if not answer.status.allowed:
            what = f"{resource}/{subresource}" if subresource else resource
            missing.append(f"{verb} {what}" + (f" ({group})" if group else ""))
    if missing:
        raise BadInput(f"context {api.context} may not do what lit needs in namespace {api.namespace}: "
                       f"{', '.join(missing)}. Ask an admin to bind the Role `lit cluster policy --provider kubernetes "
                       f"--namespace {api.namespace}` prints")


def create(name: str, options: Options, orphan_timeout: float, progress: Progress) -> Cluster:
    from .provider import check_max_gpus

    name = check_cluster_name(name)
    if store.exists(name):
        raise BadInput(f"cluster {name!r} already exists; delete it first with `lit delete cluster {name}`")
    if orphan_timeout <= 0:
        raise BadInput(f"--orphan-timeout {orphan_timeout}: must be a positive number of seconds")
    max_gpus = check_max_gpus(options.get("max_gpus"))
    node_selector = _node_selector(options.get("node_selector"))
    kubeconfig = options.get("kubeconfig")
    if kubeconfig is not None:
        if not os.path.isfile(os.path.expanduser(kubeconfig)):
            raise BadInput(f"--kubeconfig {kubeconfig}: no such file")
        kubeconfig = os.path.abspath(os.path.expanduser(kubeconfig))
    api = connect(kubeconfig, options.get("context"), options.get("namespace"))
    progress(f"checking what context {api.context} may do in namespace {api.namespace}")
    check_access(api)
    engine = load_engine()
    engine.check()
    cluster = Cluster(name, "kubernetes", (), "", float(orphan_timeout),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"), "creating",
                      {"kubeconfig": kubeconfig or "", "context": api.context, "namespace": api.namespace,
                       "image": options.get("image") or DEFAULT_IMAGE, "gpu_image": options.get("gpu_image") or "",
                       "max_gpus": max_gpus, "node_selector": node_selector})
    store.save(cluster, "")  # "creating" until the objects are up: delete finds and removes a half-made one
    progress(f"applying lit's objects to namespace {api.namespace}")
    try:
        outputs = engine.up(name, stack_config(cluster), progress, **STACK)
    except Exception:
        progress("removing what was made")
        try:
            engine.destroy(name, stack_config(cluster), progress, **STACK)
        finally:
            store.remove(name)
        raise
    ready = Cluster(name, "kubernetes", (), "", cluster.orphan_timeout, cluster.created, "ready",
                    {**cluster.settings, "outputs": outputs})
    store.save(ready, "")
    return ready


def _node_selector(value: Optional[str]) -> dict[str, str]:
    if not value:
        return {}
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise BadInput(f"--node-selector {value!r}: expected KEY=VALUE (e.g. pool=gpu)")
    return {key: val}


def delete(cluster: Cluster, progress: Progress) -> None:
    """Everything labelled for the cluster (pods, runs' objects), then the stack's objects, then the record."""
    try:
        api = connect(cluster.settings.get("kubeconfig") or None, cluster.settings.get("context") or None,
                      cluster.settings["namespace"])
    except BadInput:
        if cluster.state == "creating":
            store.remove(cluster.name)
            return
        raise
    labelled = selector(cluster.name)
    with mapped("deleting the cluster's pods"):
        api.core.delete_collection_namespaced_pod(api.namespace, label_selector=labelled, grace_period_seconds=1)
        api.core.delete_collection_namespaced_config_map(api.namespace, label_selector=labelled)
        api.networking.delete_collection_namespaced_network_policy(api.namespace, label_selector=labelled + ",lit/run")
    _wait_gone(api, labelled, progress)
    progress(f"removing lit's objects from namespace {api.namespace}")
    load_engine().destroy(cluster.name, stack_config(cluster), progress, **STACK)
    store.remove(cluster.name)


def _wait_gone(api: Api, labelled: str, progress: Progress, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with mapped("listing the cluster's pods"):
            left = api.core.list_namespaced_pod(api.namespace, label_selector=labelled).items
        if not left:
            return
        if time.monotonic() > deadline:
            raise InfrastructureError(f"{len(left)} pod(s) still there {seconds:.0f} s after they were deleted: "
                                      + ", ".join(p.metadata.name for p in left))
        progress(f"waiting for {len(left)} pod(s) to end")
        time.sleep(0.5)


def policies(namespace: str) -> list[tuple[str, Any]]:
    from lit.stacks.kubernetes.rbac import node_reader_manifest, role_manifest

    return [(f"Role for namespace {namespace} (kubectl apply -f -; bind it to lit's user with a RoleBinding)",
             role_manifest(namespace)),
            ("ClusterRole, optional: lets lit read nodes to refuse a request no node could ever run before it "
             "starts", node_reader_manifest())]


def run_network_policy(api: Api, cluster: str, run_id: str, owner: dict[str, Any]) -> None:
    """Traffic to a run's pods only from pods of the same run (owned by the run's object)."""
    from lit.stacks.kubernetes.objects import run_network_policy as manifest

    kubernetes = kubernetes_module()
    with mapped("making the run's network policy"):
        try:
            api.networking.create_namespaced_network_policy(api.namespace,
                                                            manifest(cluster, api.namespace, run_id, owner))
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 409:  # made already for this run (by an earlier lit of the same run name)
                raise


def delete_run_owner(api: Api, name: str) -> None:
    kubernetes = kubernetes_module()
    with mapped(f"deleting the run's object {name}"):
        try:
            api.core.delete_namespaced_config_map(name, api.namespace, propagation_policy="Background")
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise


def nodes_if_readable(api: Api) -> Optional[list[Any]]:
    kubernetes = kubernetes_module()
    try:
        return list(api.core.list_node().items)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status in (401, 403):
            return None  # the optional ClusterRole is not bound: placement is the scheduler's to refuse
        raise InfrastructureError(f"listing nodes: {exc.status} {exc.reason}") from None


def node_fits(node: Any, need: dict[str, str], node_selector: dict[str, str], tolerates_gpu: bool) -> bool:
    """Whether the node could ever run a pod asking `need` (its allocatable, its labels, its taints)."""
    labels = node.metadata.labels or {}
    if node.spec.unschedulable:
        return False
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    for taint in node.spec.taints or []:
        if taint.effect in ("NoSchedule", "NoExecute") and not (tolerates_gpu and taint.key == GPU_RESOURCE):
            return False
    allocatable = node.status.allocatable or {}
    return all(_quantity(allocatable.get(resource, "0")) >= _quantity(amount) for resource, amount in need.items())


def _quantity(text: str) -> float:
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(text))

