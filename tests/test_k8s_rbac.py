"""The Role an admin grants lit in a namespace (stacks/kubernetes/rbac.py): what it grants is exactly what the
provider checks with SelfSubjectAccessReview, nothing that hands out more than lit's own objects, and every API
call the provider makes is covered."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lit.stacks.kubernetes import rbac

ROOT = Path(__file__).resolve().parent.parent


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str, subresource: str) -> bool:
    """RBAC's rule matching (plugin/pkg/auth/authorizer/rbac: RuleAllows), wildcards included."""
    name = f"{resource}/{subresource}" if subresource else resource
    return any((verb in r["verbs"] or "*" in r["verbs"]) and (group in r["apiGroups"] or "*" in r["apiGroups"])
               and (name in r["resources"] or "*" in r["resources"]) for r in rules)


def test_the_role_grants_exactly_what_lit_checks() -> None:
    role = rbac.role_manifest("ml-team")
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "ml-team"
    assert rbac.REQUIRED and len(set(rbac.REQUIRED)) == len(rbac.REQUIRED)
    missing = [r for r in rbac.REQUIRED if not allowed(role["rules"], *r)]
    assert not missing, missing
    granted = {(verb, group, *(name.split("/", 1) if "/" in name else (name, "")))
               for rule in role["rules"] for group in rule["apiGroups"] for name in rule["resources"]
               for verb in rule["verbs"]}
    assert granted == set(rbac.REQUIRED), granted ^ set(rbac.REQUIRED)


def test_the_role_holds_no_wildcard_secret_or_escalation() -> None:
    rules = rbac.role_manifest("ml-team")["rules"]
    assert "*" not in json.dumps(rules)
    names = {name for rule in rules for name in rule["resources"]}
    groups = {group for rule in rules for group in rule["apiGroups"]}
    assert "secrets" not in names, "lit reads no secrets"
    assert "rbac.authorization.k8s.io" not in groups, "lit grants nothing to anyone"
    assert not {"pods/attach", "pods/proxy", "services/proxy"} & names
    assert not any(v in rule["verbs"] for rule in rules for v in ("escalate", "bind", "impersonate"))
    # Cluster-scoped and every authenticated user's already (system:basic-user): not in a namespaced Role.
    assert "selfsubjectaccessreviews" not in names


def test_exec_is_granted_both_ways_a_server_may_check_it() -> None:
    """WebSocket exec is `get` on v1.34 and `get` plus `create` from v1.35 (AuthorizePodWebsocketUpgradeCreate-
    Permission); SPDY is `create`."""
    assert ("get", "", "pods", "exec") in rbac.REQUIRED and ("create", "", "pods", "exec") in rbac.REQUIRED


def test_port_forwarding_is_granted_both_ways_a_server_may_check_it() -> None:
    """The dashboard's forward to a work's pod: WebSocket portforward is `get`; SPDY (and, from v1.35, WebSockets
    too) `create`."""
    assert ("get", "", "pods", "portforward") in rbac.REQUIRED
    assert ("create", "", "pods", "portforward") in rbac.REQUIRED


def test_the_node_reader_is_read_only_and_about_nodes_alone() -> None:
    role = rbac.node_reader_manifest()
    assert role["kind"] == "ClusterRole" and "namespace" not in role["metadata"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]


def test_a_bad_namespace_is_refused() -> None:
    with pytest.raises(ValueError):
        rbac.role_manifest("ML Team")


# The Python client's method names and the RBAC verb each is authorized as.
VERBS = {"create": "create", "read": "get", "list": "list", "watch": "watch", "delete": "delete",
         "delete_collection": "deletecollection", "patch": "patch", "replace": "update", "connect_get": "get",
         "connect_post": "create"}
KINDS = {"pod": ("pods", ""), "pod_exec": ("pods", "exec"), "pod_portforward": ("pods", "portforward"),
         "pod_log": ("pods", "log"), "event": ("events", ""),
         "config_map": ("configmaps", ""), "network_policy": ("networkpolicies", ""),
         "service_account": ("serviceaccounts", ""), "resource_quota": ("resourcequotas", "")}
GROUPS = {"networkpolicies": "networking.k8s.io"}


def test_every_namespaced_call_the_provider_makes_is_in_the_role() -> None:
    sources = list((ROOT / "provisioner" / "kubernetes").glob("*.py"))
    if not sources:
        pytest.skip("no kubernetes provider in this tree")
    pattern = re.compile(r"\b(" + "|".join(sorted(VERBS, key=len, reverse=True)) + r")_namespaced_(\w+?)\b")
    used = set()
    for path in sources:
        for method, kind in pattern.findall(path.read_text()):
            assert kind in KINDS, f"{path.name}: {method}_namespaced_{kind} is not in this test's table"
            resource, sub = KINDS[kind]
            used.add((VERBS[method], GROUPS.get(resource, ""), resource, sub))
    assert used, "the provider makes no namespaced call?"
    missing = sorted(used - set(rbac.REQUIRED))
    assert not missing, f"calls the Role does not grant: {missing}"
