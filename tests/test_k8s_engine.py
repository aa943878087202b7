"""KubeEngine (tests/k8s/engine.py): the Kubernetes cluster's real program, each object made for real in a test API
server; and, without one, its refusals.

The API server comes from the test cluster's fixture (tests/k8s, tests/conftest.py) or from LIT_TEST_KUBECONFIG
(a kubeconfig whose current context may create namespaces); without either the cluster tests skip. What lit made is
read back through the Kubernetes client, never from the engine's own record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lit.runtime.errors import InfrastructureError
from lit.stacks import kubernetes as k8s_stack

pytest.importorskip("kubernetes")
pytest.importorskip("pulumi_kubernetes")

from tests.k8s.engine import KubeEngine

PROGRAM, PROJECT, SECRETS = k8s_stack.PROGRAM, k8s_stack.PROJECT, k8s_stack.SECRET_KEYS
UNREACHABLE = """apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: unreachable-token-3f9a}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""


def _config(cluster: str, namespace: str, kubeconfig: str, max_gpus: str = "") -> dict[str, str]:
    return {"lit:clusterName": cluster, "lit:namespace": namespace, "lit:kubeconfig": kubeconfig,
            "lit:context": "", "lit:maxGpus": max_gpus}


# ----- without an API server
def test_an_unreachable_api_server_fails_the_up_and_records_nothing(tmp_path: Path) -> None:
    engine = KubeEngine(tmp_path, timeout=120)
    events: list[str] = []
    with pytest.raises(InfrastructureError, match="cannot reach the API server"):
        engine.up("demo", _config("demo", "ml", UNREACHABLE), events.append, PROGRAM, PROJECT, SECRETS)
    assert engine.outputs("demo", PROGRAM, PROJECT) is None
    state = engine.state("demo", PROJECT)
    assert state is None or not state["resources"], state


def test_a_kubeconfig_without_the_context_asked_for_is_refused(tmp_path: Path) -> None:
    config = {**_config("demo", "ml", UNREACHABLE), "lit:context": "elsewhere"}
    with pytest.raises(InfrastructureError, match="kubeconfig cannot be used"):
        KubeEngine(tmp_path, timeout=120).up("demo", config, lambda _: None, PROGRAM, PROJECT, SECRETS)


def test_destroying_a_stack_never_made_is_a_no_op(tmp_path: Path) -> None:
    KubeEngine(tmp_path).destroy("demo", _config("demo", "ml", UNREACHABLE), lambda _: None, PROGRAM, PROJECT)


# ----- against the test cluster
@pytest.fixture(scope="module")
def kubeconfig(k8s_cluster: Any) -> str:
    """The test cluster's admin kubeconfig (tests/k8s: a real API server; root, so these are e2e and root)."""
    return str(k8s_cluster.admin_kubeconfig)


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    from kubernetes import client

    name = f"lit-engine-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _read(api: Any, namespace: str) -> dict[str, Any]:
    from kubernetes import client

    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    selector = "app.kubernetes.io/managed-by=lit"
    return {"sa": core.list_namespaced_service_account(namespace, label_selector=selector).items,
            "netpol": net.list_namespaced_network_policy(namespace, label_selector=selector).items,
            "quota": core.list_namespaced_resource_quota(namespace, label_selector=selector).items}


@pytest.mark.e2e
def test_up_makes_the_objects_again_idempotently_prunes_and_destroy_removes_them(
        tmp_path: Path, kubeconfig: str, api: Any, namespace: str) -> None:
    contents = Path(kubeconfig).read_text()
    engine = KubeEngine(tmp_path / "home")
    events: list[str] = []
    config = _config("demo", namespace, contents, max_gpus="2")
    outputs = engine.up("demo", config, events.append, PROGRAM, PROJECT, SECRETS)
    assert outputs == {"serviceAccount": "lit-demo-work", "namespace": namespace,
                       "networkPolicy": "lit-demo-isolate", "quota": "lit-demo-gpus"}
    made = _read(api, namespace)
    (sa,), (netpol,), (quota,) = made["sa"], made["netpol"], made["quota"]
    assert sa.automount_service_account_token is False and sa.metadata.labels["lit/cluster"] == "demo"
    assert netpol.spec.policy_types == ["Ingress"] and not netpol.spec.ingress
    assert netpol.spec.pod_selector.match_labels == {"app.kubernetes.io/managed-by": "lit", "lit/cluster": "demo"}
    assert quota.spec.hard == {"requests.nvidia.com/gpu": "2"}
    # The record holds no secret: not the kubeconfig's contents, not its credentials.
    record = engine.state_path("demo", PROJECT).read_text()
    assert contents not in record and "lit:kubeconfig" not in record
    assert oct(engine.state_path("demo", PROJECT).stat().st_mode & 0o777) == "0o600"

    uids = {o.metadata.uid for kind in made.values() for o in kind}
    engine.up("demo", config, events.append, PROGRAM, PROJECT, SECRETS)
    assert {o.metadata.uid for kind in _read(api, namespace).values() for o in kind} == uids, "up again remade"

    outputs = engine.up("demo", {**config, "lit:maxGpus": ""}, events.append, PROGRAM, PROJECT, SECRETS)
    assert outputs["quota"] == "" and not _read(api, namespace)["quota"], "the dropped quota is still there"

    engine.destroy("demo", config, events.append, PROGRAM, PROJECT, SECRETS)
    assert not any(_read(api, namespace).values())
    assert engine.outputs("demo", PROGRAM, PROJECT) is None and not engine.state_path("demo", PROJECT).exists()


@pytest.mark.e2e
def test_an_object_the_stack_did_not_make_is_refused_not_taken_over(
        tmp_path: Path, kubeconfig: str, api: Any, namespace: str) -> None:
    from kubernetes import client

    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "lit-demo-work"}})
    engine = KubeEngine(tmp_path / "home")
    with pytest.raises(InfrastructureError, match="already exists"):
        engine.up("demo", _config("demo", namespace, kubeconfig), lambda _: None, PROGRAM, PROJECT, SECRETS)
    sa = client.CoreV1Api(api).read_namespaced_service_account("lit-demo-work", namespace)
    assert not (sa.metadata.labels or {}), "the engine changed an object it does not own"


@pytest.mark.e2e
def test_the_api_servers_refusal_fails_the_up(tmp_path: Path, kubeconfig: str) -> None:
    """A namespace that does not exist: the API server answers 404 and the engine must not carry on."""
    engine = KubeEngine(tmp_path / "home")
    with pytest.raises(InfrastructureError, match="404"):
        engine.up("demo", _config("demo", f"absent-{uuid.uuid4().hex[:6]}", kubeconfig), lambda _: None,
                  PROGRAM, PROJECT, SECRETS)
    state = engine.state("demo", PROJECT) or {"resources": []}
    assert all(r["status"] != "created" for r in state["resources"]), json.dumps(state)
