"""A connection to a pod: commands run through the API server's `pods/exec` (a websocket, the v5 channel protocol
where the server offers it: stdin can then be closed), so no sshd runs in pods and nothing but the API server is
reached. The launcher's step order is the same as over SSH: the bundle on stdin, the agent started, and the
JSON-lines protocol over a long-lived exec stream (kubernetes.stream.ws_client)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

from lit.runtime.errors import InfrastructureError

from ..base import Channel, Connection, Machine
from ..connector import Connector
from .client import Api, kubernetes_module

CONTAINER = "work"
STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3
CLOSE_WAIT_SECONDS = 0.5  # how long a port-forward's proxy thread gets to end its websocket itself


def _open(api: Api, pod: str, command: str, stdin: bool) -> Any:
    kubernetes = kubernetes_module()
    core = api.own().core  # its own client: the stream helper swaps the client's call_api while it connects
    try:
        return kubernetes.stream.stream(
            core.connect_get_namespaced_pod_exec, pod, api.namespace, container=CONTAINER,
            command=["sh", "-c", command], stdin=stdin, stdout=True, stderr=True, tty=False,
            _preload_content=False, binary=True)
    except kubernetes.client.exceptions.ApiException as exc:
        raise InfrastructureError(f"pod {pod}: exec refused: {exc.status} {exc.reason}") from None
    except Exception as exc:  # the websocket library's errors (handshake, connection) are not the client's
        raise InfrastructureError(f"pod {pod}: exec failed: {type(exc).__name__}: {exc}") from None


def _take(ws: Any) -> tuple[bytes, bytes]:
    """What the stream holds for stdout and stderr now, without leaving a frame behind.

    WSClient.read_channel on a channel with nothing buffered first calls update(0), which may read the next
    frames, for any channel, into the client's buffers (kubernetes/stream/ws_client.py). Reading stdout before
    stderr would leave a stdout frame read by the stderr call sitting there until the next update() returns: a
    whole update timeout later if nothing else arrives. Reading stderr first and stdout last leaves no stdout
    behind (stderr is only ever why a command failed, read at its end)."""
    err = ws.read_channel(STDERR)
    out = ws.read_channel(STDOUT)
    return out, err


def _shut(websocket: Any) -> None:
    """Close a websocket (websocket-client's WebSocket) and its socket. Its close() does nothing once the peer's
    close frame was read (that marks it disconnected), which left the TLS socket open until garbage collection."""
    try:
        websocket.close(timeout=1)
    except Exception:  # the websocket library's own errors on a connection already lost
        pass
    websocket.shutdown()


def _returncode(ws: Any, pod: str) -> Optional[int]:
    """The command's exit code. The client reads it from the API server's final Status and assumes a number
    there; a stream the server refused (the pod's container no longer runs) carries a message instead, on which
    the client's int() raises ValueError: that is lit's InfrastructureError, with the server's words."""
    try:
        code = ws.returncode
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InfrastructureError(f"pod {pod}: the command did not run: {exc}") from None
    return int(code) if code is not None else None


def _supports_close(ws: Any) -> bool:
    return str(getattr(ws, "subprotocol", "")) == "v5.channel.k8s.io"


class ExecConnection(Connection):
    tunnels = True

    def __init__(self, api: Api, machine: Machine) -> None:
        self.api = api
        self.machine = machine

    def run(self, command: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> tuple[int, str, str]:
        if stdin is not None:
            # Ends stdin after exactly these bytes whether or not the server can close the channel (v4 cannot).
            command = f"head -c {len(stdin)} | {{ {command}\n}}"
        ws = _open(self.api, self.machine.id, command, stdin is not None)
        out, err = bytearray(), bytearray()
        try:
            if stdin is not None:
                view = memoryview(stdin)
                while view:
                    ws.write_channel(STDIN, bytes(view[:1 << 20]))
                    view = view[1 << 20:]
                if _supports_close(ws):
                    ws.close_channel(STDIN)
            deadline = time.monotonic() + timeout
            while ws.is_open():
                if time.monotonic() > deadline:
                    raise InfrastructureError(f"pod {self.machine.id}: {command[:60]!r} did not end in {timeout:.0f} s")
                ws.update(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                more_out, more_err = _take(ws)
                out += more_out
                err += more_err
            more_out, more_err = _take(ws)
            out += more_out
            err += more_err
            code = _returncode(ws, self.machine.id)
        finally:
            _shut(ws.sock)
        return (code if code is not None else -1), out.decode(errors="replace"), err.decode(errors="replace")

    def channel(self, command: str) -> Channel:
        return ExecChannel(_open(self.api, self.machine.id, command, True), self.machine.id)

    def tunnel(self, port: int) -> PortForwardTunnel:
        return PortForwardTunnel(self.api, self.machine.id, port)

    def close(self) -> None:
        return None  # each command is its own exec stream


class PortForwardTunnel:
    """One TCP connection to `port` in a pod, through the API server's pods/portforward.

    A portforward websocket carries one connection per port it names: channel 2i is port i's data, 2i+1 its
    errors, each opened by a frame holding the port (two bytes, little endian), which the client's PortForward
    checks (kubernetes/stream/ws_client.py). Its proxy thread relays the websocket to a socket pair whose end we
    hold, closing it once the websocket ends (the pod's side closed) or an error arrives; closing ours ends the
    websocket. The protocol has no half close: shutdown_write ends the whole connection."""

    def __init__(self, api: Api, pod: str, port: int) -> None:
        kubernetes = kubernetes_module()
        core = api.own().core  # its own client, as _open's
        try:
            self.forward = kubernetes.stream.portforward(core.connect_get_namespaced_pod_portforward, pod,
                                                         api.namespace, ports=str(port))
        except kubernetes.client.exceptions.ApiException as exc:
            raise InfrastructureError(f"pod {pod}: port-forward refused: {exc.status} {exc.reason}") from None
        except Exception as exc:  # the websocket library's errors (handshake, connection)
            raise InfrastructureError(f"pod {pod}: port-forward failed: {type(exc).__name__}: {exc}") from None
        self.sock = self.forward.socket(port)
        self.pod, self.port = pod, port

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def recv(self, size: int) -> bytes:
        return bytes(self.sock.recv(size))

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close our end; the proxy thread then closes the websocket, except where the pod's side ended it first
        (the proxy returns on the closed connection without closing its socket): then we do, once it is gone."""
        self.forward.close()
        theirs = self.forward.local_ports[self.port].python
        ws = self.forward.websocket
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while theirs.fileno() != -1 and time.monotonic() < deadline:  # the proxy closes its end as it ends
            time.sleep(0.01)
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while ws.sock is not None and time.monotonic() < deadline:  # ... then the websocket, if still connected
            time.sleep(0.01)
        _shut(ws)


class ExecChannel:
    """A long-lived exec stream as the relay wants a channel: select()able (a socket pair whose far end a thread
    fills from the websocket), with the command's exit status once it ends."""

    def __init__(self, ws: Any, pod: str) -> None:
        self.ws = ws
        self.pod = pod
        self.exit_status = -1
        self.status_event = threading.Event()
        self._near, self._far = socket.socketpair()
        self._send_lock = threading.Lock()
        self._pump = threading.Thread(target=self._read, name=f"lit-exec-{pod}", daemon=True)
        self._pump.start()

    def _read(self) -> None:
        try:
            while self.ws.is_open():
                self.ws.update(timeout=1.0)
                data, _ = _take(self.ws)  # the attach relay writes nothing on stderr but why it failed
                if data:
                    self._far.sendall(data)
            code = self.ws.returncode
            self.exit_status = code if code is not None else -1
        except Exception:  # closed under us (close(), a dropped connection, the websocket library's own errors)
            self.exit_status = -1  # the relay sees the stream end and reconnects
        finally:
            self.status_event.set()
            try:
                self._far.shutdown(socket.SHUT_WR)  # the relay reads the end of the stream
            except OSError:
                pass

    def fileno(self) -> int:
        return self._near.fileno()

    def recv(self, size: int) -> bytes:
        return self._near.recv(size)

    def sendall(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.ws.write_channel(STDIN, bytes(data))  # the client sends anything but bytes as text
            except Exception as exc:  # a closed websocket: the relay sees the stream end and reconnects
                raise OSError(f"exec stream to {self.pod} closed: {exc}") from None

    def shutdown_write(self) -> None:
        if _supports_close(self.ws):
            with self._send_lock:
                self.ws.close_channel(STDIN)

    def close(self) -> None:
        _shut(self.ws.sock)  # the pump's next update finds it disconnected and ends
        self._pump.join(2.0)
        for sock in (self._near, self._far):
            sock.close()


class ExecConnector(Connector):
    """Reaches a cluster's pods through its API server (the machine's id is the pod's name)."""

    ready = "exec ready"

    def __init__(self, api: Api) -> None:
        self.api = api

    def wait(self, machine: Machine, timeout: float) -> None:
        return None  # a pod is reachable once it runs, which acquire waited for

    def connect(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                keepalive: float = 5.0) -> Connection:
        return ExecConnection(self.api, machine)

