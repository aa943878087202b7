"""Cluster records under the lit home: `~/.lit/clusters/NAME/cluster.json`, plus its pinned host keys."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lit.runtime.errors import BadInput
from lit.runtime.home import lit_home

from .base import Cluster, check_cluster_name


def clusters_dir() -> Path:
    return lit_home() / "clusters"


def cluster_dir(name: str) -> Path:
    return clusters_dir() / check_cluster_name(name)


def known_hosts_path(name: str) -> Path:
    return cluster_dir(name) / "known_hosts"


def exists(name: str) -> bool:
    return (cluster_dir(name) / "cluster.json").exists()


def load(name: str) -> Cluster:
    path = cluster_dir(name) / "cluster.json"
    if not path.exists():
        known = ", ".join(list_names()) or "none yet"
        raise BadInput(f"no cluster named {name!r} (known: {known}); create one with `lit create cluster {name} "
                       "--provider ssh --hosts USER@ADDR,...`")
    try:
        return Cluster.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"cluster record {path} is damaged ({exc}); "
                       f"delete it with `lit delete cluster {name}`") from None


def list_names() -> list[str]:
    base = clusters_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "cluster.json").exists())


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    _private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def save(cluster: Cluster, known_hosts: str) -> None:
    """Write the known hosts first and the record last: a record exists only when the cluster is whole."""
    directory = cluster_dir(cluster.name)
    _private_dir(lit_home())
    _private_dir(clusters_dir())
    write_private(directory / "known_hosts", known_hosts)
    write_private(directory / "cluster.json", json.dumps(cluster.to_dict(), indent=2) + "\n")


def remove(name: str) -> None:
    directory = cluster_dir(name)
    if directory.exists():
        shutil.rmtree(directory)
