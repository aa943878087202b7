"""The cluster's GPU cap: a ResourceQuota on requested NVIDIA GPUs, made only when the user sets maxGpus."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .objects import gpu_quota

GPU = "nvidia.com/gpu"  # the NVIDIA device plugin's extended resource


@dataclass
class QuotaArgs:
    cluster: str
    namespace: str
    max_gpus: int
    labels: dict[str, str] = field(default_factory=dict)


class Quota(pulumi.ComponentResource):
    """`requests.nvidia.com/gpu: N`: extended resources are quota'd by their requests only (Kubernetes docs,
    Resource Quotas: "Resource quota for extended resources"). A quota counts every pod of the namespace, not
    only lit's (quota scopes select by priority class or QoS, not by label): in a shared namespace it caps the
    others' GPUs too, which is why it is opt-in."""

    def __init__(self, name: str, args: QuotaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:kubernetes:Quota", name, None, opts)
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-gpus",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=gpu_quota(args.cluster), namespace=args.namespace,
                                                labels=args.labels),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard={f"requests.{GPU}": str(args.max_gpus)}),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"quota": self.quota.metadata.name})
