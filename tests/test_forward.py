"""`ClusterLauncher.forward`: a work's server, on a machine with no route from here, reached through lit's own
connection to that machine from a listening socket on 127.0.0.1.

- `Forward` alone (the fast layer): the relay, half closes, close(), against a server on this machine.
- On the SSH test bed: a real ClusterLauncher (its default seams: the cluster's record under LIT_HOME, SSH) runs an
  app whose work serves HTTP on `self.port`, driven by the real Orchestrator in a thread; the test asks the
  launcher for a forward while the work serves. The bed's hosts listen on their own addresses only.
- On the Kubernetes test cluster: the same through the API server's pods/portforward, as lit-user bound to the
  Role `lit cluster policy` prints.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from lit.provisioner.forward import Forward
from lit.runtime.errors import InfrastructureError
from tests.support import wait_for

pytestmark = pytest.mark.timeout(180)

APP = '''
import http.server
import json
import socket
import threading

import lit as L


class Server(L.LightningWork):
    """Serves GET / (who it is) until GET /stop."""

    def __init__(self) -> None:
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu"))

    def run(self) -> None:
        done = threading.Event()
        name = socket.gethostname()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"served_by": name, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if self.path == "/stop":
                    done.set()

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        done.wait()
        server.shutdown()


class Flow(L.LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.server = Server()

    def run(self) -> None:
        self.server.run()
        if self.server.has_succeeded:
            self.stop("served")


app = L.LightningApp(Flow())
'''


def listening(port: int) -> list[str]:
    """The local addresses of this machine's TCP sockets listening on `port` (/proc/net/tcp, IPv4)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, state = fields[1], fields[3]
        host, hex_port = address.split(":")
        if int(hex_port, 16) == port and state == "0A":  # TCP_LISTEN
            found.append(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
    return found


def get(address: tuple[str, int], path: str = "/", timeout: float = 10.0) -> dict[str, Any]:
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        return dict(json.loads(response.read()))
    finally:
        connection.close()


# -- Forward alone ----------------------------------------------------------------------------------------
class SocketTunnel:
    """A tunnel that is a plain TCP connection on this machine (what an SSH channel is, minus SSH)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo_upper() -> Iterator[int]:
    """A server on 127.0.0.1 that answers everything a client sent, upper-cased, once the client has half closed."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    server.close()


def test_a_forward_relays_both_ways_passes_a_half_close_on_and_ends_at_close(echo_upper: int) -> None:
    closed = threading.Event()
    forward = Forward("w", echo_upper, SocketTunnel, on_close=closed.set)
    host, port = forward.address
    assert host == "127.0.0.1" and listening(port) == ["127.0.0.1"]
    payload = os.urandom(300_000).hex().encode()  # larger than a socket buffer: both directions stream
    with socket.create_connection(forward.address, timeout=10) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)  # the server answers only after it saw the end
        got = b""
        while chunk := client.recv(65536):
            got += chunk
    assert got == payload.upper()
    with socket.create_connection(forward.address, timeout=10) as idle:  # a connection still open at close()
        wait_for(lambda: forward.clients, 10, "the idle connection accepted")
        forward.close()
        assert closed.is_set()
        assert listening(port) == []
        assert idle.recv(10) == b""  # its relay ended, and closed it


def test_a_tunnel_that_cannot_be_opened_closes_the_client_connection() -> None:
    def refused(port: int) -> SocketTunnel:
        raise InfrastructureError(f"port {port}: connection refused")

    forward = Forward("w", 9, refused)
    try:
        with socket.create_connection(forward.address, timeout=10) as client:
            client.settimeout(5)
            assert client.recv(10) == b""
    finally:
        forward.close()


# -- a real launcher over SSH on the test bed -------------------------------------------------------------
class Running:
    """The real Orchestrator with a real ClusterLauncher, in a thread (it handles no signals there)."""

    def __init__(self, tmp_path: Path, cluster: str) -> None:
        from lit.provisioner.launcher import ClusterLauncher
        from lit.runtime.loader import load_app
        from lit.runtime.orchestrator import Orchestrator

        app_file = tmp_path / "app" / "app.py"
        app_file.parent.mkdir()
        app_file.write_text(APP)
        self.launcher = ClusterLauncher(cluster, "fwd-run", app_file)
        self.orchestrator = Orchestrator(load_app(app_file), app_file, tmp_path / "run", launcher=self.launcher,
                                         orphan_timeout=20.0)
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.outcome = self.orchestrator.run()

    def forward(self, port_of_work: Optional[int] = None) -> tuple[str, int]:
        """The forward to the server work's port, once its machine is up and the server answers through it."""
        def answered() -> Optional[tuple[str, int]]:
            port = port_of_work or self.work_port()
            if port is None:
                return None
            address = self.launcher.forward("root.server", port)
            if address is None:
                return None
            try:
                get(address, timeout=5)
            except (OSError, http.client.HTTPException):
                return None  # the server is not listening yet: the forward closed the connection
            return address

        return wait_for(answered, 120, "the work's server through a forward")

    def work_port(self) -> Optional[int]:
        return self.orchestrator.app.root.server.port  # type: ignore[no-any-return]

    def stop(self, address: tuple[str, int]) -> None:
        get(address, "/stop")
        self.thread.join(120)
        assert not self.thread.is_alive(), "the run did not end"
        assert self.outcome is not None and self.outcome.exit_code == 0, self.outcome


@pytest.fixture(scope="module")
def bed() -> Iterator[Any]:
    from tests.support import require
    from tests.testbed import require_root_and_sshd, testbed_fixture

    require(require_root_and_sshd(), "the SSH test bed")
    yield from testbed_fixture(1)


def test_a_forward_reaches_a_works_server_on_a_host_over_ssh(bed: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_ssh_cluster import Lit

    lit = Lit(tmp_path, bed)
    host = bed.hosts[0]
    try:
        created = lit("create", "cluster", "tb", "--provider", "ssh", "--hosts", f"root@{host.address}", "--key",
                      str(bed.key_path), "--known-hosts", str(bed.known_hosts_path), "--orphan-timeout", "20")
        assert created.returncode == 0, created.stderr
        monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
        run = Running(tmp_path, "tb")
        address = run.forward()
        host_name, port = address
        assert host_name == "127.0.0.1" and listening(port) == ["127.0.0.1"]  # this machine only
        assert get(address)["served_by"] == host.name  # the work's answer, from its host
        assert run.launcher.forward("root.server", run.work_port() or 0) == address  # one per (work, port)
        # The work binds 0.0.0.0 on its host, which has no route to this machine's loopback: only SSH gets there.
        with urllib.request.urlopen(f"http://{address[0]}:{port}/x", timeout=10) as response:
            assert json.loads(response.read()) == {"served_by": host.name, "path": "/x"}
        run.stop(address)  # the work ends, so the run does: its agent's end and close() end the forward
        assert listening(port) == []
        assert run.launcher.forwards == {}
        assert run.launcher.forward("root.server", run.work_port() or 0) is None  # the run is over
    finally:
        lit.cleanup()
        host.exec(["sh", "-c", "pkill -9 -f lit.runtime.agent"])


# -- a real launcher through the Kubernetes API server ------------------------------------------------------
@pytest.fixture
def kube(k8s_cluster: Any, tmp_path: Path) -> Iterator[Any]:
    """A namespace of the test cluster (tests/test_k8s_run.py's Kube); nothing of the run left after."""
    from tests.test_k8s_run import Kube

    runner = Kube(k8s_cluster, tmp_path)
    try:
        yield runner
        wait_for(lambda: not runner.labelled(), 60, f"nothing of a run left in {runner.ns}: {runner.labelled()}")
        deleted = runner("delete", "cluster", "kc", "--yes")
        assert deleted.returncode == 0, deleted.stderr
    finally:
        runner.cleanup()


def test_a_forward_reaches_a_works_server_in_a_pod_through_the_api_server(kube: Any, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    kube.grant()  # lit-user holds only what `lit cluster policy` prints: pods/portforward included
    created = kube.create()
    assert created.returncode == 0, created.stderr
    monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
    run = Running(tmp_path, "kc")
    address = run.forward()
    host_name, port = address
    assert host_name == "127.0.0.1" and listening(port) == ["127.0.0.1"]
    pod = run.launcher.remotes["root.server"].lease.machine.id  # type: ignore[union-attr]
    assert get(address)["served_by"] == pod  # a pod's network has no route from here: only the API server's
    assert get(address, "/again") == {"served_by": pod, "path": "/again"}  # each connection its own stream
    run.stop(address)
    assert listening(port) == []
    assert run.launcher.forwards == {}
