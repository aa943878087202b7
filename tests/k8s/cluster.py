"""A Kubernetes test cluster of real parts, on this one machine, for lit's Kubernetes provider.

What runs (binaries from build.py, cached per machine):

* etcd 3.6, plain http on 127.0.0.1 (loopback only, a data dir in the cluster's directory);
* kube-apiserver v1.34 on https://127.0.0.1:<port>, ``--authorization-mode=Node,RBAC``, NodeRestriction, service
  account tokens signed by the cluster's own key, its own PKI (``pki/``: a CA, serving and client certificates);
* kube-controller-manager with ``--use-service-account-credentials`` and the garbage collector, namespace,
  service account (and token), node lifecycle, pod GC, root CA publisher, job, replica set, deployment,
  TTL-after-finished, taint eviction and cluster role aggregation controllers;
* kube-scheduler;
* test nodes (``lit-node``, cmd/lit-node), by default ``cpu-1``, ``cpu-2`` and ``gpu-1``; ``gpu-1`` has
  ``nvidia.com/gpu: 1`` in capacity and allocatable, the label ``lit.test/gpu=true`` and the taint
  ``nvidia.com/gpu=present:NoSchedule``. Each registers its Node (InternalIP 127.0.0.1, its kubelet port), renews
  its Lease, runs the pods bound to it and serves the kubelet's /exec and /containerLogs to the API server.

Pods: a node runs the first container's command + args (the image is ignored: the machine's own root filesystem,
read-only, is the pod's, with private /root, /tmp, /var/tmp, /home, /srv, /var/log, /run and a minimal /dev) as
root in new network, PID, mount, UTS and IPC namespaces, without CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_BOOT and a
few more. Stand-ins over shutdown, poweroff, halt, reboot, telinit and systemctl only record the call. Each pod has
an address on the cluster's bridge (``10.88.<n>.0/20`` for the cluster, a /24 per node; no default route: pods reach
each other and the bridge's address, nothing else). No volumes, no probes, no services (no kube-proxy), no images.

From Python::

    with k8s_cluster() as cluster:                 # or the `k8s_cluster` fixture (tests/conftest.py)
        cluster.admin_kubeconfig                   # Path: system:masters
        cluster.user_kubeconfig("alice")           # Path: a user with no rights until RBAC gives some
        cluster.api_url, cluster.ca_path, cluster.nodes

By hand::

    python -m tests.k8s up [--dir DIR]      # DIR: $LIT_K8S_DIR or /tmp/lit-k8s
    python -m tests.k8s status [--dir DIR]
    python -m tests.k8s down [--dir DIR]
    python -m tests.k8s down --all          # every test's cluster whose creator is gone

Everything made is recorded in ``<dir>/state.json`` before or as it is made; ``down`` kills only the recorded
processes (checked against their start time) and the pods' PID-1 processes the nodes recorded, and removes the
bridge and the directory it made.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.k8s.build import ensure_built
from tests.testbed import (
    TestBedError,
    _disable_ipv6,
    _global_lock,
    _link_exists,
    _proc_start,
    _run,
    _same_process,
    _used_networks,
    _wait_for,
)

__all__ = [
    "DEFAULT_NODES",
    "Cluster",
    "ClusterError",
    "Node",
    "NodeSpec",
    "default_dir",
    "down_abandoned",
    "k8s_cluster",
    "k8s_cluster_fixture",
    "require_root",
]

STATE_FILE = "state.json"
POD_POOL = ipaddress.ip_network("10.88.0.0/16")  # a /20 per cluster, a /24 per node in it
SERVICE_CIDR = "10.96.0.0/16"  # addresses for Services (allocated only: nothing routes them)
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "node-lifecycle-controller",  # takes the not-ready taint off Ready nodes, marks silent ones NotReady
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",  # fills admin/edit/view, which RoleBindings commonly name
    "job-controller",
    "replicaset-controller",
    "deployment-controller",
    "ttl-after-finished-controller",
    "resourcequota-controller",  # a quota's use goes down again when pods go (replenishment)
)


class ClusterError(TestBedError):
    """The test cluster could not be brought up or taken down."""


@dataclass(frozen=True)
class NodeSpec:
    """A test node to bring up: its name, capacity, labels and taints (``key=value:Effect``)."""

    name: str
    gpus: int = 0
    cpu: str = "4"
    memory: str = "8Gi"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()


# Sized for lit's compute table (runtime/compute.py): "cpu" asks 2 CPUs and 8 GiB, "gpu" 4 CPUs, 16 GiB and a GPU;
# eight "cpu" works fit on the two CPU nodes. The sizes are declared, not enforced: pods share this machine.
DEFAULT_NODES = (
    NodeSpec("cpu-1", cpu="8", memory="40Gi"),
    NodeSpec("cpu-2", cpu="8", memory="40Gi"),
    NodeSpec("gpu-1", gpus=1, cpu="8", memory="40Gi", labels={"lit.test/gpu": "true"}, taints=(GPU_TAINT,)),
)


@dataclass(frozen=True)
class Node:
    """A node that is up: its name, GPUs, pod addresses, kubelet port and its log."""

    name: str
    gpus: int
    pod_cidr: str
    port: int
    dir: Path

    @property
    def log_path(self) -> Path:
        return self.dir / "node.log"


def default_dir() -> Path:
    """The cluster directory the command line uses: $LIT_K8S_DIR or /tmp/lit-k8s."""
    return Path(os.environ.get("LIT_K8S_DIR") or "/tmp/lit-k8s")


def require_root() -> str | None:
    """Why the cluster cannot come up here (None when it can): it needs root, ip and nsenter."""
    if os.geteuid() != 0:
        return "the Kubernetes test cluster needs root (network namespaces, a bridge, mounts)"
    for tool in ("ip", "nsenter", "go"):
        if shutil.which(tool) is None:
            return f"the Kubernetes test cluster needs {tool}"
    return None


# --------------------------------------------------------------------------
# PKI
# --------------------------------------------------------------------------
def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _PKI:
    """The cluster's CA in ``<dir>/pki`` and the certificates it signs (ECDSA P-256, valid for 10 days)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_path = directory / "ca.crt"

    def create(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lit-k8s-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        (self.dir / "ca.key").write_bytes(_pem_key(key))
        self.ca_path.write_bytes(_pem_cert(cert))
        # The service account token signing key pair.
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.dir / "sa.key").write_bytes(_pem_key(sa))
        (self.dir / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def issue(self, name: str, common_name: str, groups: Sequence[str] = (), *, server: bool = False,
              client: bool = True, ips: Sequence[str] = (), dns: Sequence[str] = ()) -> tuple[Path, Path]:
        """(certificate, key) files ``<name>.crt``/``<name>.key`` for CN=common_name, O=groups."""
        ca_key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = ([x509.ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [x509.ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.DNSName(d) for d in dns]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        crt_path, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        crt_path.write_bytes(_pem_cert(cert))
        return crt_path, key_path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, api_url: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    """A self-contained kubeconfig (certificates inline), context ``lit-k8s``, written as JSON (valid YAML)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lit-k8s", "cluster": {"server": api_url, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
        "contexts": [{"name": "lit-k8s", "context": {"cluster": "lit-k8s", "user": user, "namespace": "default"}}],
        "current-context": "lit-k8s",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------
class Cluster:
    """A test cluster that is up (``Cluster.up()``, ``k8s_cluster()``) or recorded in a directory (``load``)."""

    def __init__(self, directory: Path, owns_dir: bool) -> None:
        self.dir = directory
        self.owns_dir = owns_dir
        self.pki = _PKI(directory / "pki")
        self.api_port = 0
        self.etcd_port = 0
        self.subnet = ""
        self.bridge = ""
        self.bridge_address = ""
        self.bin_dir = ""
        self.processes: list[dict[str, Any]] = []  # {"name", "pid", "start"}: everything we started
        self.nodes: list[Node] = []
        self.users: list[str] = []
        self._popens: list[subprocess.Popen[bytes]] = []  # this process's children, reaped at down

    # -- public ---------------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig of ``lit-admin`` (group system:masters), context ``lit-k8s``, namespace default."""
        return self.dir / "admin.kubeconfig"

    @property
    def kubeconfig(self) -> Path:
        """Same as admin_kubeconfig."""
        return self.admin_kubeconfig

    def user_kubeconfig(self, name: str = "lit-user", groups: Sequence[str] = ()) -> Path:
        """A kubeconfig of a user ``name`` (groups: its O= fields), which may do nothing until RBAC says so.

        Made once per name (``<dir>/users/<name>.kubeconfig``); ``lit-user`` exists from the start."""
        users = self.dir / "users"
        path = users / f"{name}.kubeconfig"
        if path.exists():
            return path
        users.mkdir(exist_ok=True)
        cert, key = self.pki.issue(f"user-{name}", name, groups)
        _write_kubeconfig(path, self.api_url, self.ca_path, cert, key, name)
        if name not in self.users:
            self.users.append(name)
            self._save_state()
        return path

    @property
    def gpu_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.gpus]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def pod_dir(self, namespace: str, name: str) -> Path | None:
        """The node's directory for a pod (``container.log``, ``init.pid``, the stand-ins' ``events``), if the
        pod ran; the newest one when the name was used again."""
        found = sorted(self.dir.glob(f"nodes/*/pods/{namespace}_{name}_*"), key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    def pod_pid(self, namespace: str, name: str) -> tuple[int, int] | None:
        """(pid, start time) of the pod's PID 1 on its node (its container's parent; killing it ends the pod)."""
        d = self.pod_dir(namespace, name)
        try:
            pid, start = (d / "init.pid").read_text().split() if d else ("", "")
            return int(pid), int(start)
        except (OSError, ValueError):
            return None

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        """(status, decoded JSON or text) of one request to the API server as the admin (no client library)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        ctx.load_cert_chain(self.pki.dir / "admin.crt", self.pki.dir / "admin.key")
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=ctx, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw

    def ready_nodes(self) -> list[str]:
        """Names of the nodes that are Ready and no longer carry the not-ready taint."""
        try:
            status, nodes = self.api("GET", "/api/v1/nodes")
        except OSError:
            return []
        if status != 200:
            return []
        ready = []
        for item in nodes.get("items", []):
            conds = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in item.get("spec", {}).get("taints", []) or []}
            if conds.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                ready.append(item["metadata"]["name"])
        return sorted(ready)

    def status(self) -> dict[str, Any]:
        alive = {p["name"]: _same_process(p["pid"], p["start"]) for p in self.processes}
        return {"dir": str(self.dir), "api_url": self.api_url, "admin_kubeconfig": str(self.admin_kubeconfig),
                "processes": alive, "bridge": self.bridge, "subnet": self.subnet,
                "nodes": [n.name for n in self.nodes], "ready_nodes": self.ready_nodes()}

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- bringing it up -------------------------------------------------------------------------------
    @classmethod
    def up(cls, nodes: Sequence[NodeSpec] = DEFAULT_NODES, directory: str | os.PathLike[str] | None = None,
           timeout: float = 120.0) -> Cluster:
        """Build (once per machine) and start a cluster with `nodes`; returns when every node is Ready."""
        reason = require_root()
        if reason:
            raise ClusterError(reason)
        if directory is None:
            path, owns = Path(tempfile.mkdtemp(prefix="lit-k8s-")), True
        else:
            path = Path(directory).absolute()
            if (path / STATE_FILE).exists():
                raise ClusterError(f"a cluster is already recorded in {path}; "
                                   f"take it down first (python -m tests.k8s down --dir {path})")
            owns = not path.exists() or not any(path.iterdir())
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)
        cluster = cls(path, owns)
        try:
            cluster.bin_dir = str(ensure_built().bin_dir)
            cluster._save_state()
            cluster._bring_up(nodes, timeout)
        except BaseException:
            cluster.down()
            raise
        return cluster

    def _bin(self, name: str) -> str:
        return str(Path(self.bin_dir) / name)

    def _bring_up(self, specs: Sequence[NodeSpec], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.api_port, self.etcd_port = _free_port(), _free_port()
        self._make_pki(specs)
        self._make_bridge(len(specs))
        self._start_etcd()
        self._wait(deadline, "etcd", self._etcd_healthy)
        self._start_apiserver()
        self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)
        self._start_controllers()
        for i, spec in enumerate(specs):
            self._start_node(i, spec)
        self._save_state()
        names = sorted(s.name for s in specs)
        self._wait(deadline, f"nodes {', '.join(names)} Ready", lambda: self.ready_nodes() == names)
        # Pods in `default` are refused until the service account controller has made its `default` account.
        self._wait(deadline, "the default service account",
                   lambda: self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200)

    def _wait(self, deadline: float, what: str, pred: Any) -> None:
        def check() -> bool:
            self._check_alive()
            try:
                return bool(pred())
            except OSError:
                return False

        _wait_for(check, max(deadline - time.monotonic(), 1.0), what, interval=0.2)

    def _check_alive(self) -> None:
        for p in self.processes:
            if not _same_process(p["pid"], p["start"]):
                log = self.dir / "logs" / f"{p['name']}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise ClusterError(f"{p['name']} (pid {p['pid']}) exited; its log ({log}) ends:\n{tail}")

    def _make_pki(self, specs: Sequence[NodeSpec]) -> None:
        pki = self.pki
        pki.create()
        pki.issue("apiserver", "kube-apiserver", server=True, client=False,
                  ips=("127.0.0.1", str(ipaddress.ip_network(SERVICE_CIDR).network_address + 1)),
                  dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"))
        pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client")
        for name, cn, groups in (("admin", "lit-admin", ("system:masters",)),
                                 ("controller-manager", "system:kube-controller-manager", ()),
                                 ("scheduler", "system:kube-scheduler", ())):
            cert, key = pki.issue(name, cn, groups)
            _write_kubeconfig(self.dir / f"{name}.kubeconfig", self.api_url, pki.ca_path, cert, key, cn)
        for spec in specs:
            cert, key = pki.issue(f"node-{spec.name}", f"system:node:{spec.name}", ("system:nodes",))
            _write_kubeconfig(self.dir / f"node-{spec.name}.kubeconfig", self.api_url, pki.ca_path, cert, key,
                              f"system:node:{spec.name}")
            pki.issue(f"node-{spec.name}-serving", spec.name, server=True, client=False,
                      ips=("127.0.0.1",), dns=(spec.name,))
        self.user_kubeconfig("lit-user")

    def _make_bridge(self, n_nodes: int) -> None:
        if n_nodes > 15:
            raise ClusterError(f"at most 15 nodes fit a cluster's /20 (asked for {n_nodes})")
        with _global_lock():
            used = _used_networks()
            for net in POD_POOL.subnets(new_prefix=20):
                if not any(net.overlaps(u) for u in used):
                    break
            else:
                raise ClusterError(f"no free /20 left in {POD_POOL}: take other clusters down "
                                   "(python -m tests.k8s down --dir DIR)")
            while True:
                bridge = "litk8s" + secrets.token_hex(3)
                if not _link_exists(bridge):
                    break
            self.subnet, self.bridge = str(net), bridge
            self.bridge_address = str(net.network_address + 1)
            self._save_state()
            _run(["ip", "link", "add", bridge, "type", "bridge"])
            _disable_ipv6(bridge)
            _run(["ip", "addr", "add", f"{self.bridge_address}/{net.prefixlen}", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])

    def _spawn(self, name: str, argv: list[str]) -> None:
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.dir)
        self._popens.append(proc)
        start = _proc_start(proc.pid)
        self.processes.append({"name": name, "pid": proc.pid, "start": start})
        self._save_state()

    def _start_etcd(self) -> None:
        peer = _free_port()
        self._spawn("etcd", [
            self._bin("etcd"), "--name=lit-k8s", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=lit-k8s=http://127.0.0.1:{peer}", "--log-level=warn",
            "--unsafe-no-fsync",  # a test cluster: losing it on a crash is fine, fsyncs on a shared disk are slow
        ])

    def _etcd_healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.etcd_port, timeout=2)
        try:
            conn.request("GET", "/health")
            return b'"health":"true"' in conn.getresponse().read()
        finally:
            conn.close()

    def _start_apiserver(self) -> None:
        pki = self.pki.dir
        self._spawn("kube-apiserver", [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            # The `kubernetes` Service's endpoints would be 127.0.0.1, which Endpoints refuse; nothing routes it.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}", "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])

    def _apiserver_ready(self) -> bool:
        status, body = self.api("GET", "/readyz", timeout=3)
        return status == 200 and str(body).strip() == "ok"

    def _start_controllers(self) -> None:
        pki = self.pki.dir
        cm = str(self.dir / "controller-manager.kubeconfig")
        self._spawn("kube-controller-manager", [
            self._bin("kube-controller-manager"), f"--kubeconfig={cm}",
            f"--authentication-kubeconfig={cm}", f"--authorization-kubeconfig={cm}",
            "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--node-monitor-period=2s",  # Ready nodes lose their not-ready taint within seconds
            "--profiling=false", "--v=1",
        ])
        sched = str(self.dir / "scheduler.kubeconfig")
        self._spawn("kube-scheduler", [
            self._bin("kube-scheduler"), f"--kubeconfig={sched}",
            f"--authentication-kubeconfig={sched}", f"--authorization-kubeconfig={sched}",
            "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=1",
        ])

    def _start_node(self, index: int, spec: NodeSpec) -> None:
        net = ipaddress.ip_network(self.subnet)
        pod_cidr = list(net.subnets(new_prefix=24))[index + 1]  # the first /24 holds the bridge's address
        node_dir = self.dir / "nodes" / spec.name
        node_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        pki = self.pki.dir
        labels = ",".join(f"{k}={v}" for k, v in spec.labels.items())
        self._spawn(f"node-{spec.name}", [
            self._bin("lit-node"), "run", f"--name={spec.name}",
            f"--kubeconfig={self.dir / f'node-{spec.name}.kubeconfig'}", f"--listen=127.0.0.1:{port}",
            f"--tls-cert={pki / f'node-{spec.name}-serving.crt'}",
            f"--tls-key={pki / f'node-{spec.name}-serving.key'}",
            f"--client-ca={pki / 'ca.crt'}", f"--state-dir={node_dir}", f"--bridge={self.bridge}",
            f"--pod-network={self.subnet}", f"--pod-cidr={pod_cidr}", f"--cpu={spec.cpu}",
            f"--memory={spec.memory}", f"--gpus={spec.gpus}", f"--labels={labels}",
            f"--taints={','.join(spec.taints)}",
        ])
        self.nodes.append(Node(spec.name, spec.gpus, str(pod_cidr), port, node_dir))

    # -- state ----------------------------------------------------------------------------------------
    def _to_state(self) -> dict[str, Any]:
        return {
            "version": 1, "creator_pid": os.getpid(), "owns_dir": self.owns_dir, "bin_dir": self.bin_dir,
            "api_port": self.api_port, "etcd_port": self.etcd_port, "subnet": self.subnet, "bridge": self.bridge,
            "bridge_address": self.bridge_address, "processes": self.processes, "users": self.users,
            "nodes": [{"name": n.name, "gpus": n.gpus, "pod_cidr": n.pod_cidr, "port": n.port, "dir": str(n.dir)}
                      for n in self.nodes],
        }

    def _save_state(self) -> None:
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self._to_state(), indent=2) + "\n")
        os.replace(tmp, self.dir / STATE_FILE)

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None) -> Cluster:
        path = Path(directory or default_dir()).absolute()
        try:
            state = json.loads((path / STATE_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ClusterError(f"no cluster recorded in {path}: {e}") from None
        c = cls(path, bool(state.get("owns_dir")))
        c.bin_dir = state.get("bin_dir", "")
        c.api_port, c.etcd_port = state.get("api_port", 0), state.get("etcd_port", 0)
        c.subnet, c.bridge = state.get("subnet", ""), state.get("bridge", "")
        c.bridge_address = state.get("bridge_address", "")
        c.processes = list(state.get("processes", []))
        c.users = list(state.get("users", []))
        c.nodes = [Node(n["name"], n["gpus"], n["pod_cidr"], n["port"], Path(n["dir"])) for n in state.get("nodes", [])]
        return c

    # -- taking it down -------------------------------------------------------------------------------
    def _pod_inits(self) -> list[tuple[int, int]]:
        """(pid, start) of the pods' PID-1 processes the nodes recorded."""
        found = []
        for f in self.dir.glob("nodes/*/pods/*/init.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid, start = f.read_text().split()
                found.append((int(pid), int(start)))
        return found

    def down(self) -> None:
        """Stop every process the cluster started (nodes first: they stop their pods), then remove the bridge
        (the pods' veths went with their network namespaces) and the directory, if the cluster made it."""
        ordered = sorted(self.processes, key=lambda p: 0 if str(p["name"]).startswith("node-") else 1)
        for p in ordered:
            if _same_process(p["pid"], p["start"]):
                with contextlib.suppress(OSError):
                    os.kill(p["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in ordered:
            while _same_process(p["pid"], p["start"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        # Whatever is left, and the pods' PID 1s (killing a PID 1 ends its whole PID namespace).
        leftovers = [(p["pid"], p["start"]) for p in ordered] + self._pod_inits()
        for pid, start in leftovers:
            if _same_process(pid, start):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(TestBedError):
            _wait_for(lambda: not any(_same_process(pid, start) for pid, start in leftovers), 10,
                      "the cluster's processes to end")
        for proc in self._popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._popens = []
        if self.bridge and _link_exists(self.bridge):
            _run(["ip", "link", "del", self.bridge], check=False)
        self.processes = []
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                (self.dir / STATE_FILE).unlink()

    def leftovers(self) -> list[str]:
        """What of this cluster is still on the machine (empty after down): processes, pod PID 1s, the bridge,
        veths on it, the directory."""
        left = [f"process {p['name']} ({p['pid']})" for p in self.processes if _same_process(p["pid"], p["start"])]
        left += [f"pod init {pid}" for pid, start in self._pod_inits() if _same_process(pid, start)]
        if self.bridge and _link_exists(self.bridge):
            left.append(f"bridge {self.bridge}")
        if self.owns_dir and self.dir.exists():
            left.append(f"directory {self.dir}")
        return left


@contextlib.contextmanager
def k8s_cluster(nodes: Sequence[NodeSpec] = DEFAULT_NODES, directory: str | os.PathLike[str] | None = None,
                timeout: float = 120.0) -> Iterator[Cluster]:
    """A cluster that is up for the block and taken down after it."""
    cluster = Cluster.up(nodes, directory, timeout)
    try:
        yield cluster
    finally:
        cluster.down()


def k8s_cluster_fixture(nodes: Sequence[NodeSpec] = DEFAULT_NODES, **kwargs: Any) -> Iterator[Cluster]:
    """Generator for a pytest fixture: skips without root, yields a cluster that is up, takes it down after."""
    import pytest

    reason = require_root()
    if reason:
        pytest.skip(reason)
    with k8s_cluster(nodes, **kwargs) as cluster:
        yield cluster


k8s_cluster_fixture.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def down_abandoned() -> list[Path]:
    """Take down every cluster in a temp directory of its own (``Cluster.up()`` without a directory: tests) whose
    creator is gone. Clusters in a directory that was named (the command line's) are left alone."""
    taken = []
    for state in Path(tempfile.gettempdir()).glob("lit-k8s-*/" + STATE_FILE):
        try:
            creator = int(json.loads(state.read_text()).get("creator_pid", 0))
        except (OSError, ValueError):
            continue
        if creator and _proc_start(creator) is not None:
            continue
        Cluster.load(state.parent).down()
        taken.append(state.parent)
    return taken


def cli(command: str, directory: str | None, everything: bool = False) -> int:
    """The command line's up/status/down (python -m tests.k8s)."""
    if command == "down" and everything:
        for path in down_abandoned():
            print(f"down: {path}")
        return 0
    path = Path(directory) if directory else default_dir()
    if command == "up":
        start = time.monotonic()
        cluster = Cluster.up(directory=path)
        print(f"up in {time.monotonic() - start:.1f} s: {cluster.api_url}")
        print(f"admin kubeconfig: {cluster.admin_kubeconfig}")
        print(f"lit-user kubeconfig: {cluster.user_kubeconfig('lit-user')}")
        print("nodes: " + ", ".join(f"{n.name} ({n.pod_cidr}{f', gpus {n.gpus}' if n.gpus else ''})"
                                    for n in cluster.nodes))
        return 0
    cluster = Cluster.load(path)
    if command == "status":
        print(json.dumps(cluster.status(), indent=2))
        return 0
    cluster.down()
    left = cluster.leftovers()
    if left:
        print("left behind: " + ", ".join(left))
        return 1
    print(f"down: {path}")
    return 0
