"""The providers, by name: the only place besides a provider's own package that names one.

Each provider is a package `lit.provisioner.<name>` whose `__init__` defines `INFO` (a `ProviderInfo`) and imports
nothing heavy; its `Provider` class (and the SDKs it needs) load on first use.
"""

from __future__ import annotations

import importlib
from functools import cache

from lit.runtime.errors import BadInput

from .base import Cluster, Provider, ProviderInfo

PACKAGES = ("ssh", "aws", "kubernetes")


@cache
def infos() -> dict[str, ProviderInfo]:
    found = {}
    for package in PACKAGES:
        info = importlib.import_module(f"{__package__}.{package}").INFO
        found[info.name] = info
    return found


def info(name: str) -> ProviderInfo:
    known = infos()
    if name not in known:
        raise BadInput(f"unknown provider {name!r}; available: {', '.join(known)}")
    return known[name]


def get_provider(name: str) -> Provider:
    module_name, _, attr = info(name).factory.partition(":")
    provider: Provider = getattr(importlib.import_module(module_name), attr)()
    return provider


def provider_for(cluster: Cluster) -> Provider:
    return get_provider(cluster.provider)
