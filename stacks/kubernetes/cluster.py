"""A lit cluster in the user's Kubernetes namespace: the work service account, the network isolation and an
optional GPU quota, every object made through one explicit provider (the user's kubeconfig and context) and
labelled `app.kubernetes.io/managed-by=lit`, `lit/cluster=<name>`.

Config (namespace `lit:`):
  clusterName  the cluster's name (a DNS label)
  namespace    the user's namespace, which must exist (lit creates none: an admin grants lit a Role in it)
  kubeconfig   the kubeconfig: its contents or its path (the provider takes either: a value naming an existing
               file is read); empty, the provider's default ($KUBECONFIG, else ~/.kube/config). Always marked
               secret, so contents are encrypted in the state; pass contents with the engine's secret_keys
               (SECRET_KEYS) and they stay off the pulumi CLI's command line and out of the stack's config too.
               A path keeps the state free of credentials but makes destroy depend on the file still being there
  context      the kubeconfig context to use; empty, its current-context
  maxGpus      optional: a ResourceQuota of that many requested nvidia.com/gpu in the namespace

No Role or RoleBinding: work pods hold no API token (identity.py), so there is nothing to grant them. What lit
itself needs is the Role an admin grants (rbac.py), not part of this stack, which runs with those rights.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .identity import Identity, IdentityArgs
from .network import Isolation, IsolationArgs
from .objects import check_name, cluster_labels
from .quota import Quota, QuotaArgs


def parse_max_gpus(value: Optional[str]) -> Optional[int]:
    """lit:maxGpus: empty for no quota, else a whole number of GPUs (0 forbids GPUs in the namespace)."""
    if value is None or value.strip() == "":
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"lit:maxGpus {value!r} is not a whole number of GPUs") from None
    if count < 0:
        raise ValueError(f"lit:maxGpus {count} is negative")
    return count


def program() -> None:
    config = pulumi.Config("lit")
    name = check_name("cluster name", config.require("clusterName"))
    namespace = check_name("namespace", config.require("namespace"))
    # Secret from the start whatever its source: a provider input made of a secret is encrypted in the state.
    kubeconfig_text = config.get("kubeconfig") or ""
    kubeconfig = pulumi.Output.secret(kubeconfig_text) if kubeconfig_text else None
    context = config.get("context") or None
    max_gpus = parse_max_gpus(config.get("maxGpus"))
    labels = cluster_labels(name)

    provider = k8s.Provider(f"{name}-kubernetes", kubeconfig=kubeconfig, context=context, namespace=namespace)
    opts = pulumi.ResourceOptions(provider=provider)

    identity = Identity(name, IdentityArgs(name, namespace, labels), opts)
    isolation = Isolation(name, IsolationArgs(name, namespace, labels), opts)
    quota = Quota(name, QuotaArgs(name, namespace, max_gpus, labels), opts) if max_gpus is not None else None

    pulumi.export("serviceAccount", identity.account.metadata.name)
    pulumi.export("namespace", namespace)
    pulumi.export("networkPolicy", isolation.policy.metadata.name)
    pulumi.export("quota", quota.quota.metadata.name if quota is not None else "")
