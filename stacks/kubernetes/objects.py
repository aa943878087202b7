"""The labels every lit object carries, and the manifests lit makes per run (pure functions, no Pulumi).

Every object of a lit cluster, whether the stack makes it or lit makes it at run time, carries
`app.kubernetes.io/managed-by=lit` and `lit/cluster=<name>`; a run's objects carry `lit/run=<id>` as well. The
labels are how lit finds its objects (and how a NetworkPolicy selects its pods): local state is a cache.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
CLUSTER = "lit/cluster"
RUN = "lit/run"

# A name lit puts both into label values (at most 63 characters, apimachinery IsValidLabelValue) and into object
# names (DNS subdomains) is held to a DNS label (apimachinery IsDNS1123Label): it fits both.
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")


def check_name(kind: str, value: str) -> str:
    """A cluster's or a run's name: a DNS label (it is both a label value and part of object names)."""
    if not _DNS_LABEL.match(value or ""):
        raise ValueError(f"invalid {kind} {value!r}: use 1-63 lowercase letters, digits and '-', not starting or "
                         "ending with '-'")
    return value


def label_value(text: str) -> str:
    """A label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends) that stays unique: a run id or a
    work name as is when it already is one, else cleaned and suffixed with a digest of the original."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-_.")
    if len(clean) > 63 or clean != text:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        clean = (clean[:54].strip("-_.") + "-" + digest).strip("-_.")
    return clean or "x"


def object_name(*parts: str) -> str:
    """A DNS-1123 label from `parts` (at most 63 characters), unique by a digest of all of them."""
    raw = "-".join(parts)
    clean = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{clean[:54].strip('-')}-{digest}"


def cluster_labels(cluster: str) -> dict[str, str]:
    """The labels of every object of the cluster (and the selector of the cluster's pods)."""
    return {MANAGED_BY: "lit", CLUSTER: check_name("cluster name", cluster)}


def run_labels(cluster: str, run_id: str) -> dict[str, str]:
    """The labels of a run's objects: its pods, its NetworkPolicy, its owner ConfigMap (any run id: see
    label_value)."""
    if not run_id:
        raise ValueError("a run's objects need its run id")
    return {**cluster_labels(cluster), RUN: label_value(run_id)}


def work_service_account(cluster: str) -> str:
    """The service account work pods run as (it holds no API token: see stacks/kubernetes/identity.py)."""
    return f"lit-{check_name('cluster name', cluster)}-work"


def cluster_network_policy(cluster: str) -> str:
    return f"lit-{check_name('cluster name', cluster)}-isolate"


def gpu_quota(cluster: str) -> str:
    return f"lit-{check_name('cluster name', cluster)}-gpus"


OWNER_KEYS = ("apiVersion", "kind", "name", "uid")  # what the API server requires of an ownerReference


def run_network_policy(cluster: str, namespace: str, run_id: str, owner: Mapping[str, Any]) -> dict[str, Any]:
    """The NetworkPolicy lit makes at run time, one per run, owned by the run's object (`owner`: an
    ownerReference to the run's ConfigMap, so the garbage collector deletes the policy with it, as KubeRay cleans
    up with owner references): the run's pods admit ingress only from pods of the same run.

    NetworkPolicies are additive (a pod selected by several admits the union of their rules), so the cluster's
    own policy (stacks/kubernetes/network.py) admits nothing: it selects every lit pod of the cluster and denies
    its ingress, and this policy opens exactly the run's pods to each other. Had the cluster's policy admitted
    every lit pod of the cluster, no per-run policy could narrow it. Egress stays open (works fetch packages and
    datasets); lit reaches pods through the API server (exec), which NetworkPolicy does not govern.
    """
    labels = run_labels(cluster, run_id)
    missing = [key for key in OWNER_KEYS if not owner.get(key)]
    if missing:
        raise ValueError(f"the run's owner reference lacks {', '.join(missing)}: {dict(owner)}")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": object_name("lit-run", cluster, run_id),  # the name of the run's owner ConfigMap too
            "namespace": check_name("namespace", namespace),
            "labels": dict(labels),
            "ownerReferences": [dict(owner)],
        },
        "spec": {
            "podSelector": {"matchLabels": dict(labels)},
            "policyTypes": ["Ingress"],
            # A pod selector without a namespace selector: pods of this namespace only.
            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(labels)}}]}],
        },
    }
