"""The cluster's network isolation: no ingress to lit's pods but what a run opens for itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .objects import cluster_network_policy


@dataclass
class IsolationArgs:
    cluster: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


class Isolation(pulumi.ComponentResource):
    """A NetworkPolicy selecting every lit pod of the cluster (its labels), with Ingress in its policy types and
    no ingress rule: their ingress is denied. NetworkPolicies are additive, so this is the floor, and each run
    adds its own policy at run time admitting only the run's own pods (objects.run_network_policy; made by lit,
    owned by the run's ConfigMap, gone with it). A cluster-wide "from lit pods of the same cluster" rule here
    would let every run reach every other run's pods whatever the per-run policies said.

    Egress is not restricted (works fetch packages, datasets, object storage). A NetworkPolicy is enforced only
    by a network plugin that implements it (Calico, Cilium, ...); on one that doesn't, it is accepted and inert.
    """

    def __init__(self, name: str, args: IsolationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:kubernetes:Isolation", name, None, opts)
        self.policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-isolate",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster_network_policy(args.cluster), namespace=args.namespace,
                                                labels=args.labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.labels),
                policy_types=["Ingress"],
                ingress=[]),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"network_policy": self.policy.metadata.name})
