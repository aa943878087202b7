"""Builds the test cluster's binaries from the Go modules under tests/k8s/cmd/, once per machine.

Two modules, so that etcd's dependencies never meet Kubernetes':

* ``cmd/`` (``lit.test/k8s``): requires ``k8s.io/kubernetes`` at ``KUBERNETES_VERSION``, every staging module
  (``k8s.io/api``, ``k8s.io/client-go``, ...) pinned to the matching ``v0.x`` with ``replace`` lines; its mains
  are kube-apiserver, kube-controller-manager, kube-scheduler and lit-node (the test node, see lit-node/).
* ``cmd/etcd/`` (``lit.test/etcd``): etcd's server at ``ETCD_VERSION``.

The binaries land in ``<cache>/<KUBERNETES_VERSION>-<hash of the sources>/bin/`` (cache: $LIT_K8S_CACHE or
/var/cache/lit-k8s). A file lock keeps two builds from racing; each build happens in a fresh directory beside
the final one and is renamed into place whole, so a directory that exists is complete.

    python -m tests.k8s build      # prints where the binaries are and how long the build took

Measured on a 2-core machine: the cold build took about 8.5 minutes (etcd about 1 minute, the four Kubernetes
mains about 7.5, after about 1 minute of module downloads). A build that reuses Go's build cache after a source
change takes about 10 s. Run it before pytest: the suite's per-test timeout (120 s) also covers the fixture's first
build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import TestBedError, file_lock

__all__ = ["BINARIES", "ETCD_VERSION", "KUBERNETES_VERSION", "BuildError", "Built", "bin_dir", "ensure_built"]

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"
SOURCES = Path(__file__).resolve().parent / "cmd"
K8S_MAINS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "lit-node")
BINARIES = ("etcd", *K8S_MAINS)
# Two cores on the test machines: more parallel compiles only fight over them (and over memory when linking).
GO_PARALLEL = "2"


class BuildError(TestBedError):
    """The Go build failed."""


@dataclass(frozen=True)
class Built:
    bin_dir: Path
    seconds: float  # 0.0 when the binaries were already there
    cached: bool

    def path(self, name: str) -> Path:
        return self.bin_dir / name


def cache_root() -> Path:
    return Path(os.environ.get("LIT_K8S_CACHE") or "/var/cache/lit-k8s")


def source_hash() -> str:
    """A digest of every file the build reads from this tree (go.mod, go.sum, the mains, the node)."""
    h = hashlib.sha256()
    for path in sorted(p for p in SOURCES.rglob("*") if p.is_file() and p.suffix in (".go", ".mod", ".sum")):
        h.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def bin_dir() -> Path:
    return cache_root() / f"{KUBERNETES_VERSION}-{source_hash()}" / "bin"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries: none of them needs cgo (the node execs `ip` and `nsenter` for what would).
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false")
    return env


def _go_build(module_dir: Path, out: Path, packages: list[str]) -> None:
    argv = ["go", "build", "-p", GO_PARALLEL, "-trimpath", "-ldflags=-s -w", "-o", f"{out}/", *packages]
    p = subprocess.run(argv, cwd=module_dir, env=_go_env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError(f"go build in {module_dir} failed ({p.returncode}):\n{p.stderr[-4000:]}")


def ensure_built() -> Built:
    """The binaries for the current sources, building them first if this machine has not yet."""
    final = bin_dir()
    if final.is_dir():
        return Built(final, 0.0, cached=True)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".build.lock"):
        if final.is_dir():  # another process built it while we waited for the lock
            return Built(final, 0.0, cached=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".bin-", dir=final.parent))
        try:
            start = time.monotonic()
            _go_build(SOURCES / "etcd", stage, ["."])
            _go_build(SOURCES, stage, [f"./{m}" for m in K8S_MAINS])
            seconds = time.monotonic() - start
            missing = [b for b in BINARIES if not (stage / b).is_file()]
            if missing:
                raise BuildError(f"the build made no {', '.join(missing)} in {stage}")
            stage.chmod(0o755)
            os.rename(stage, final)
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
        _prune(root, keep=final.parent)
        return Built(final, seconds, cached=False)


def _prune(root: Path, keep: Path, builds_kept: int = 3) -> None:
    """Remove all but the newest builds (about 350 MB each): sources that changed leave their old build behind.
    A cluster still running on a removed build keeps running (its binaries stay open)."""
    builds = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d != keep),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[builds_kept - 1:]:
        shutil.rmtree(old, ignore_errors=True)
