"""What an admin grants so lit can run a cluster in a namespace: `lit cluster policy --provider kubernetes` prints
these documents, and the provider checks each (verb, group, resource, subresource) of REQUIRED with a
SelfSubjectAccessReview before it makes anything. Pure functions over one table (RULES).

Sources for the verbs:
- SelfSubjectAccessReview needs no grant here: Kubernetes' bootstrap policy gives `create` on
  selfsubjectaccessreviews (and selfsubjectrulesreviews) to the ClusterRole system:basic-user, bound to the group
  system:authenticated (kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, ClusterRoles and
  ClusterRoleBindings). It is cluster-scoped, so a namespaced Role could not grant it anyway.
- Exec over WebSockets (the Python client's `stream`) is an HTTP GET, authorized as `get` on pods/exec; SPDY's
  POST is `create`. From v1.35 the AuthorizePodWebsocketUpgradeCreatePermission gate (beta, on by default;
  kubernetes pkg/features/kube_features.go, PR #134577, issue #133515) also requires `create` on the WebSocket
  upgrade. On v1.34 the gate does not exist and `get` alone admits a WebSocket exec. lit asks both, so the same
  Role works before and after 1.35.
- Port forwarding (`ClusterLauncher.forward`: the run dashboard shows a work's server) is the same: the Python
  client's `portforward` is a WebSocket GET, `get` on pods/portforward; SPDY (kubectl) POSTs, `create`; from v1.35
  the same gate also asks `create` of the WebSocket upgrade.
- deletecollection: lit deletes a cluster's pods, run objects and run policies by label (DELETE on the
  collection), which RBAC authorizes as `deletecollection`, not `delete`.
- The stack (pulumi-kubernetes) creates with server-side apply (PATCH: `patch`), reads back (`get`), may update
  (`update`), deletes, and awaits creation and deletion by watching the object (`list`, `watch`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .objects import MANAGED_BY, check_name


class Rule(NamedTuple):
    group: str  # "" is the core group
    resource: str
    subresource: str  # "" for the resource itself
    verbs: tuple[str, ...]
    why: str


STACK_VERBS = ("get", "list", "watch", "create", "patch", "update", "delete")
RULES: tuple[Rule, ...] = (
    Rule("", "pods", "", ("create", "get", "list", "watch", "delete", "deletecollection"), "the works' pods"),
    Rule("", "pods", "exec", ("create", "get"), "lit reaches a pod through exec (WebSocket: get; >=1.35 also create)"),
    Rule("", "pods", "log", ("get",), "a pod's output when it fails to start"),
    Rule("", "pods", "portforward", ("create", "get"),
         "the run dashboard reaches a work's server in its pod (WebSocket: get; >=1.35 also create)"),
    Rule("", "events", "", ("list", "watch"), "the scheduler's and kubelet's reasons a pod waits"),
    Rule("", "configmaps", "", ("create", "get", "list", "delete", "deletecollection"),
         "the run's owner object (its pods and policy are garbage-collected with it)"),
    Rule("networking.k8s.io", "networkpolicies", "", (*STACK_VERBS, "deletecollection"),
         "per run: only the run's pods reach each other (create, delete); the stack's isolation (apply)"),
    Rule("", "serviceaccounts", "", STACK_VERBS, "the stack: the work pods' identity (it holds no token)"),
    Rule("", "resourcequotas", "", STACK_VERBS, "the stack: the optional GPU quota"),
)

# Every permission lit checks with SelfSubjectAccessReview: (verb, group, resource, subresource).
REQUIRED: list[tuple[str, str, str, str]] = [
    (verb, rule.group, rule.resource, rule.subresource) for rule in RULES for verb in rule.verbs]


def _merged() -> list[dict[str, Any]]:
    """One RBAC rule per API group and verb set, listing resources as RBAC names them ("pods/exec")."""
    rules: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for rule in RULES:
        name = f"{rule.resource}/{rule.subresource}" if rule.subresource else rule.resource
        rules.setdefault((rule.group, tuple(sorted(set(rule.verbs)))), []).append(name)
    return [{"apiGroups": [group], "resources": resources, "verbs": list(verbs)}
            for (group, verbs), resources in rules.items()]


def role_manifest(namespace: str) -> dict[str, Any]:
    """The namespaced Role lit needs in `namespace` (bind it to lit's user or group with a RoleBinding)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "lit", "namespace": check_name("namespace", namespace), "labels": {MANAGED_BY: "lit"}},
        "rules": _merged(),
    }


def node_reader_manifest() -> dict[str, Any]:
    """Optional ClusterRole: read nodes, so lit can refuse a request no node could ever hold before it starts
    (without it, placement is the scheduler's to refuse; nodes are cluster-scoped, a Role cannot grant them)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "lit-node-reader", "labels": {MANAGED_BY: "lit"}},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}],
    }
