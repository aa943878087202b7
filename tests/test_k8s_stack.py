"""The Kubernetes cluster stack's policies, checked on the real `lit.stacks.kubernetes.cluster.program` under
Pulumi mocks; and the per-run NetworkPolicy lit makes at run time (stacks/kubernetes/objects.py).

As tests/test_stack_policies.py: a Mocks class answers registrations (echoed inputs), a recording MockMonitor keeps
each resource's type, inputs (secrets still wrapped), parent and provider reference, and each config runs in its
own interpreter (tests/mockstack.py) since Pulumi's runtime state is process-global. The pytest process itself
never imports pulumi.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lit.stacks.kubernetes import objects
from tests import mockstack

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi/runtime/rpc.py _special_secret_sig
SIG_KEY = "4dabf18193072939515e22adb298388d"
TOKEN = "k8s-token-d41d8cd98f00b204e9800998ecf8427e"  # in the kubeconfig: must appear nowhere in clear
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}
users:
- name: lit
  user: {{token: {TOKEN}}}
contexts:
- name: lit@test
  context: {{cluster: test, user: lit, namespace: ml-team}}
current-context: lit@test
"""
BASE = {
    "lit:clusterName": "policy-k8s",
    "lit:namespace": "ml-team",
    "lit:kubeconfig": KUBECONFIG,
    "lit:context": "lit@test",
    "lit:maxGpus": "4",
}
CONFIGS: dict[str, dict[str, str]] = {
    "full": BASE,
    "minimal": {"lit:clusterName": "bare", "lit:namespace": "default", "lit:kubeconfig": KUBECONFIG},
    "empty-optionals": {**BASE, "lit:context": "", "lit:maxGpus": ""},
    "no-gpus-allowed": {**BASE, "lit:maxGpus": "0"},
    "gpus-negative": {**BASE, "lit:maxGpus": "-1"},
    "gpus-not-a-number": {**BASE, "lit:maxGpus": "four"},
    # The provider reads a value naming an existing file as a path; empty, its default kubeconfig.
    "kubeconfig-path": {**BASE, "lit:kubeconfig": "/home/someone/.kube/config"},
    "default-kubeconfig": {**BASE, "lit:kubeconfig": ""},
    "bad-cluster-name": {**BASE, "lit:clusterName": "Policy_K8s"},
    "bad-namespace": {**BASE, "lit:namespace": "ML Team"},
}
DEPLOYED = ["full", "minimal", "empty-optionals", "no-gpus-allowed", "kubeconfig-path", "default-kubeconfig"]
REFUSED = {"gpus-negative": "maxGpus", "gpus-not-a-number": "maxGpus", "bad-cluster-name": "cluster name",
           "bad-namespace": "namespace"}

PROVIDER_TYPE = "pulumi:providers:kubernetes"
COMPONENTS = {"lit:kubernetes:Identity", "lit:kubernetes:Isolation", "lit:kubernetes:Quota"}
EXPORTS = {"serviceAccount", "namespace", "networkPolicy", "quota"}
SA, NETPOL, QUOTA = ("kubernetes:core/v1:ServiceAccount", "kubernetes:networking.k8s.io/v1:NetworkPolicy",
                     "kubernetes:core/v1:ResourceQuota")


# ------------------------------------------------------------------------------------------------------------
# The harness: runs in a child interpreter (`python tests/mockstack.py tests.test_k8s_stack CONFIG OUT`).
# ------------------------------------------------------------------------------------------------------------

def _run_program(config: dict[str, str]) -> dict[str, Any]:
    import pulumi

    from lit.stacks.kubernetes.cluster import program
    from tests.mockstack import run_under_mocks

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            if not args.custom:
                return None, {}
            state = dict(args.inputs)
            if args.typ == PROVIDER_TYPE:
                return f"{args.name}-provider-id", state
            meta = state.get("metadata") or {}
            return f"{meta.get('namespace')}/{meta.get('name')}", state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            return {}, []

    return run_under_mocks(program, Mocks(), config, "lit-kubernetes")


# ------------------------------------------------------------------------------------------------------------
# The recorded stack.
# ------------------------------------------------------------------------------------------------------------

class Recorded(mockstack.Recorded):
    @property
    def namespace(self) -> str:
        return self.config["lit:namespace"]

    def objects(self) -> list[dict[str, Any]]:
        """The Kubernetes objects (custom resources of the kubernetes package; not the provider)."""
        return [r for r in self.resources if r["custom"] and r["type"].startswith("kubernetes:")]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    return mockstack.record_all(__name__, CONFIGS, tmp_path_factory.mktemp("k8s-stack-policies"), Recorded,
                                timeout=90, drop_env=("PULUMI_CONFIG", "KUBECONFIG"))


@pytest.fixture(params=DEPLOYED)
def stack(request: pytest.FixtureRequest, recorded: dict[str, Recorded]) -> Recorded:
    run = recorded[request.param]
    assert run.error is None, f"the program failed for {request.param}: {run.error}"
    return run


# ------------------------------------------------------------------------------------------------------------
# What a set of NetworkPolicies admits (namespaced pod selectors with matchLabels: all lit writes).
# ------------------------------------------------------------------------------------------------------------

def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector form not evaluated here: {selector}"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_admits(peer: dict[str, Any], source: dict[str, str]) -> bool:
    assert set(peer) <= {"podSelector"}, f"a peer other than a pod of the namespace: {peer}"
    return _selects(peer["podSelector"], source)


def admits(policies: list[dict[str, Any]], target: dict[str, str], source: dict[str, str]) -> bool:
    """Whether a pod labelled `source` may connect to a pod labelled `target` in the same namespace: a pod no
    policy with Ingress selects is open; otherwise the union of the selecting policies' rules decides."""
    selecting = [p for p in policies if "Ingress" in (p.get("policyTypes") or ["Ingress"])
                 and _selects(p["podSelector"], target)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy.get("ingress") or []:
            peers = rule.get("from")
            if not peers or any(_peer_admits(peer, source) for peer in peers):
                return True
    return False


def _spec(policy: dict[str, Any]) -> dict[str, Any]:
    """A recorded NetworkPolicy's spec (inputs as registered; a list Pulumi left out is absent)."""
    return policy["inputs"]["spec"]


# ------------------------------------------------------------------------------------------------------------
# Policies.
# ------------------------------------------------------------------------------------------------------------

def test_policy_every_object_carries_the_managed_by_and_cluster_labels(stack: Recorded) -> None:
    assert {r["type"] for r in stack.objects()} >= {SA, NETPOL}
    for r in stack.objects():
        labels = (r["inputs"].get("metadata") or {}).get("labels") or {}
        assert labels.get("app.kubernetes.io/managed-by") == "lit", f"{r['type']} {r['name']}: {labels}"
        assert labels.get("lit/cluster") == stack.name, f"{r['type']} {r['name']}: {labels}"


def test_policy_every_object_is_in_the_users_namespace_and_the_stack_makes_no_namespace(stack: Recorded) -> None:
    for r in stack.objects():
        assert (r["inputs"].get("metadata") or {}).get("namespace") == stack.namespace, r["inputs"]
    assert not stack.of_type("kubernetes:core/v1:Namespace")


def test_policy_the_work_service_account_mounts_no_token_and_nothing_grants_it_rights(stack: Recorded) -> None:
    account = stack.one(SA)
    assert account["inputs"]["metadata"]["name"] == f"lit-{stack.name}-work"
    assert account["inputs"].get("automountServiceAccountToken") is False, account["inputs"]
    rbac = [r["type"] for r in stack.objects() if r["type"].startswith("kubernetes:rbac.authorization.k8s.io/")]
    assert not rbac, f"the stack grants rights (work pods hold no token): {rbac}"


def test_policy_the_network_policy_isolates_every_lit_pod_of_the_cluster(stack: Recorded) -> None:
    spec = _spec(stack.one(NETPOL))
    lit_pods = objects.cluster_labels(stack.name)
    assert spec["podSelector"] == {"matchLabels": lit_pods}, spec
    assert "Ingress" in spec["policyTypes"], spec


def test_policy_the_network_policy_admits_no_ingress_from_outside_the_clusters_lit_pods(stack: Recorded) -> None:
    spec = _spec(stack.one(NETPOL))
    lit_pods = objects.cluster_labels(stack.name)
    for rule in spec.get("ingress") or []:
        assert rule.get("from"), f"a rule admitting every source: {rule}"
        for peer in rule["from"]:
            # Only pods of this namespace (no namespaceSelector, no ipBlock) that are lit pods of the cluster.
            assert set(peer) == {"podSelector"}, peer
            assert all(peer["podSelector"].get("matchLabels", {}).get(k) == v for k, v in lit_pods.items()), peer
    stranger = {"app": "web"}
    other_cluster = objects.cluster_labels("other")
    for source in (stranger, other_cluster, {}):
        assert not admits([spec], lit_pods, source), f"{source} reaches the cluster's pods"


def test_policy_a_run_admits_only_its_own_pods_whatever_the_clusters_policy(stack: Recorded) -> None:
    """NetworkPolicies add up: the cluster's policy must leave the per-run policies the last word."""
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "lit-run-a", "uid": "0b1c2d3e-0000-4000-8000-0001"}
    run_a = objects.run_network_policy(stack.name, stack.namespace, "a", owner)["spec"]
    run_b = objects.run_network_policy(stack.name, stack.namespace, "b", owner)["spec"]
    policies = [_spec(stack.one(NETPOL)), run_a, run_b]
    pod_a, pod_b = objects.run_labels(stack.name, "a"), objects.run_labels(stack.name, "b")
    assert admits(policies, pod_a, pod_a) and admits(policies, pod_b, pod_b)
    assert not admits(policies, pod_a, pod_b) and not admits(policies, pod_b, pod_a)
    assert not admits(policies, pod_a, objects.cluster_labels(stack.name)), "a run-less lit pod reaches run a"
    assert not admits(policies, pod_a, objects.run_labels("other", "a")), "another cluster's run reaches run a"
    assert not admits(policies, pod_a, {"app": "web"})


def test_policy_the_gpu_quota_exists_exactly_when_max_gpus_is_set(stack: Recorded) -> None:
    max_gpus = stack.config.get("lit:maxGpus", "")
    quotas = stack.of_type(QUOTA)
    if max_gpus == "":
        assert not quotas, "a quota without lit:maxGpus"
        assert stack.exports["quota"] == ""
        return
    (quota,) = quotas
    assert quota["inputs"]["spec"]["hard"] == {"requests.nvidia.com/gpu": max_gpus}, quota["inputs"]["spec"]
    assert set(quota["inputs"]["spec"]) == {"hard"}, "a scoped quota"
    assert stack.exports["quota"] == f"lit-{stack.name}-gpus"


def test_policy_every_object_goes_through_the_one_explicit_provider(stack: Recorded) -> None:
    provider = stack.one(PROVIDER_TYPE)
    ref = f"{provider['urn']}::{provider['id']}"
    strays = [f"{r['type']} {r['name']}: {r['provider'] or '(default provider)'}" for r in stack.objects()
              if r["provider"] != ref]
    assert not strays, f"objects not made through {ref}: {strays}"
    inputs = provider["inputs"]
    assert inputs.get("namespace") == stack.namespace
    assert (inputs.get("context") or "") == stack.config.get("lit:context", ""), inputs.get("context")


def test_policy_the_kubeconfig_is_a_secret_and_appears_nowhere_in_clear(stack: Recorded) -> None:
    kubeconfig = stack.one(PROVIDER_TYPE)["inputs"].get("kubeconfig")
    if not stack.config["lit:kubeconfig"]:
        assert kubeconfig is None, "an empty kubeconfig must leave the provider its default, not an empty one"
        return
    assert isinstance(kubeconfig, dict) and kubeconfig.get(SIG_KEY) == SECRET_SIG, \
        f"the provider's kubeconfig is not a secret: {str(kubeconfig)[:80]}"
    assert kubeconfig["value"] == stack.config["lit:kubeconfig"]
    in_clear = [f"{r['type']} {r['name']}" for r in stack.resources
                if TOKEN in json.dumps({k: v for k, v in r["inputs"].items() if k != "kubeconfig"})]
    assert not in_clear and TOKEN not in json.dumps(stack.exports), in_clear


def test_policy_objects_are_children_of_the_cluster_components(stack: Recorded) -> None:
    expected = {SA: "lit:kubernetes:Identity", NETPOL: "lit:kubernetes:Isolation", QUOTA: "lit:kubernetes:Quota"}
    for r in stack.objects():
        parent = stack.by_urn.get(r["parent"], {}).get("type")
        assert parent == expected.get(r["type"]), f"{r['type']} {r['name']} under {parent}"
    assert {r["type"] for r in stack.resources if not r["custom"]} <= COMPONENTS


def test_policy_the_stack_exports_what_lit_reads(stack: Recorded) -> None:
    assert set(stack.exports) == EXPORTS, stack.exports
    assert stack.exports["serviceAccount"] == f"lit-{stack.name}-work"
    assert stack.exports["namespace"] == stack.namespace
    assert stack.exports["networkPolicy"] == stack.one(NETPOL)["inputs"]["metadata"]["name"]


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_policy_the_program_refuses_bad_config_before_making_anything(key: str, recorded: dict[str, Recorded]) -> None:
    run = recorded[key]
    assert run.error is not None, f"the program accepted {run.config}"
    assert run.error["type"] == "ValueError" and REFUSED[key] in run.error["message"], run.error
    assert not run.objects(), [r["name"] for r in run.objects()]


# ------------------------------------------------------------------------------------------------------------
# The per-run NetworkPolicy (a pure function; lit makes it at run time).
# ------------------------------------------------------------------------------------------------------------

def test_the_run_network_policy_is_owned_by_the_run_and_admits_only_the_run() -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "lit-run-demo-r1-0a1b2c3d",
             "uid": "11111111-2222-4333-8444-555555555555", "blockOwnerDeletion": False}
    manifest = objects.run_network_policy("demo", "ml-team", "r1", owner)
    labels = {"app.kubernetes.io/managed-by": "lit", "lit/cluster": "demo", "lit/run": "r1"}
    assert manifest["apiVersion"] == "networking.k8s.io/v1" and manifest["kind"] == "NetworkPolicy"
    meta = manifest["metadata"]
    assert meta["namespace"] == "ml-team" and meta["labels"] == labels
    assert meta["name"] == objects.object_name("lit-run", "demo", "r1")
    assert meta["ownerReferences"] == [owner] and meta["ownerReferences"][0] is not owner
    spec = manifest["spec"]
    assert spec["podSelector"] == {"matchLabels": labels} and spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {"matchLabels": labels}}]}]
    assert admits([spec], labels, labels)
    assert not admits([spec], labels, {**labels, "lit/run": "r2"})
    # Plain data: lit sends it as is (JSON), and changing one part changes no other.
    assert json.loads(json.dumps(manifest)) == manifest
    spec["podSelector"]["matchLabels"]["x"] = "y"
    assert "x" not in spec["ingress"][0]["from"][0]["podSelector"]["matchLabels"]


def test_the_run_network_policy_selects_the_pods_lit_makes_for_the_run() -> None:
    """The policy's selector and the provider's pod labels are one rule: any run id (a label value made of it)."""
    pods = pytest.importorskip("lit.provisioner.kubernetes.pods")
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}
    for run_id in ("r1", "2026-12-01T08:54:03Z/run_7", "R" * 80):
        assert objects.label_value(run_id) == pods.label_value(run_id)
        assert objects.object_name("lit-run", "demo", run_id) == pods.object_name("lit-run", "demo", run_id)
        pod = pods.labels("demo", run_id, "train")
        spec = objects.run_network_policy("demo", "ml-team", run_id, owner)["spec"]
        assert admits([spec], pod, pods.labels("demo", run_id, "serve"))
        assert not admits([spec], pod, pods.labels("demo", run_id + "x", "serve"))
        assert len(objects.run_network_policy("demo", "ml-team", run_id, owner)["metadata"]["name"]) <= 63


@pytest.mark.parametrize(("cluster", "namespace", "run_id", "owner_keys"), [
    ("Demo", "ml-team", "r1", 4), ("demo", "ml_team", "r1", 4), ("demo", "ml-team", "", 4),
    ("-demo", "ml-team", "r1", 4), ("demo", "ml-team", "r1", 3),
])
def test_the_run_network_policy_refuses_what_kubernetes_would(cluster: str, namespace: str, run_id: str,
                                                               owner_keys: int) -> None:
    owner = dict(list({"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}.items())[:owner_keys])
    with pytest.raises(ValueError):
        objects.run_network_policy(cluster, namespace, run_id, owner)

