"""The Kubernetes API, through the official client's own kubeconfig loading (KUBECONFIG, ~/.kube/config, contexts,
exec credential plugins and token files: kubernetes.config.kube_config), and its errors mapped to lit's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from lit.runtime.errors import BadInput, InfrastructureError


def kubernetes_module() -> Any:
    try:
        import kubernetes
    except ImportError:
        raise BadInput("the kubernetes provider needs its extras: pip install 'lit[kubernetes]'") from None
    return kubernetes


@dataclass
class Api:
    """One cluster's API clients, from a kubeconfig file and context."""

    client: Any  # kubernetes.client.ApiClient
    namespace: str
    context: str

    @property
    def core(self) -> Any:
        return kubernetes_module().client.CoreV1Api(self.client)

    def own(self) -> Api:
        """The same cluster and namespace on an ApiClient of its own: for a stream (kubernetes.stream swaps its
        client's call_api while it connects, which would turn another thread's request on a shared client into a
        websocket) or a watch (which holds a connection for as long as it runs)."""
        return Api(kubernetes_module().client.ApiClient(self.client.configuration), self.namespace, self.context)

    @property
    def networking(self) -> Any:
        return kubernetes_module().client.NetworkingV1Api(self.client)

    @property
    def authorization(self) -> Any:
        return kubernetes_module().client.AuthorizationV1Api(self.client)


def connect(kubeconfig: Optional[str], context: Optional[str], namespace: Optional[str] = None) -> Api:
    """An API client as kubectl would make it from the same kubeconfig and context (bad input if it cannot)."""
    kubernetes = kubernetes_module()
    config = kubernetes.config
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else current
        if chosen is None:
            names = ", ".join(c["name"] for c in contexts)
            raise BadInput(f"--context {context!r} is not in the kubeconfig (it has: {names})")
        client = config.new_client_from_config(config_file=kubeconfig, context=chosen["name"],
                                               persist_config=False)
    except config.ConfigException as exc:
        where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        raise BadInput(f"cannot use {where}: {exc}") from None
    return Api(client, namespace or chosen.get("context", {}).get("namespace") or "default", chosen["name"])


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The client's errors as lit's: what was being done, the API's status and message."""
    kubernetes = kubernetes_module()
    try:
        yield
    except kubernetes.client.exceptions.ApiException as exc:
        raise InfrastructureError(f"{what}: {exc.status} {exc.reason}: {message_of(exc)}") from None
    except (OSError, kubernetes.client.exceptions.OpenApiException) as exc:
        raise InfrastructureError(f"{what}: {exc}") from None


def message_of(exc: Any) -> str:
    """The API's own message in an ApiException (its Status body), else the body."""
    import json

    try:
        return str(json.loads(exc.body).get("message", "")) or str(exc.body)
    except (TypeError, ValueError):
        return str(exc.body or "")

