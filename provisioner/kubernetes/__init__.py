"""The kubernetes provider: works as pods on a cluster the team already runs, reached through its API server."""

from __future__ import annotations

from ..base import Option, ProviderInfo

INFO = ProviderInfo(
    name="kubernetes",
    summary="pods on a Kubernetes cluster you already run, through its API server",
    factory="lit.provisioner.kubernetes.provider:KubernetesProvider",
    create_options=(
        Option("--kubeconfig", "the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."),
        Option("--context", "the kubeconfig context (default: its current context)."),
        Option("--namespace", "where lit's objects and pods go (default: the context's namespace, else default)."),
        Option("--image", "the image of CPU works' pods; it needs sh and python3 >= 3.9 (default: python:3.12-slim)."),
        Option("--gpu-image", "the image of GPU works' pods (default: --image)."),
        Option("--max-gpus", "a ResourceQuota: at most N GPUs requested by lit's pods at once.", metavar="N"),
        Option("--node-selector", "only nodes with this label (KEY=VALUE).", metavar="KEY=VALUE"),
    ),
    policy_options=(
        Option("--namespace", "the namespace the Role is for (default: default)."),
    ),
)
