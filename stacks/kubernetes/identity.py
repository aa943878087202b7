"""The work pods' identity: a service account that holds no API token."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .objects import work_service_account


@dataclass
class IdentityArgs:
    cluster: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


class Identity(pulumi.ComponentResource):
    """`lit-<cluster>-work`, with automountServiceAccountToken false: a work runs the user's code, which has no
    business with the Kubernetes API; lit drives pods from outside (exec through the API server, with the
    operator's own credentials). So there is no Role or RoleBinding for it either: without a token, a grant
    would reach nothing (a pod could still mount a token projected by hand, but lit's pod specs don't)."""

    def __init__(self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:kubernetes:Identity", name, None, opts)
        self.account = k8s.core.v1.ServiceAccount(
            f"{name}-work",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=work_service_account(args.cluster), namespace=args.namespace,
                                                labels=args.labels),
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"service_account": self.account.metadata.name})
