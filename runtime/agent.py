"""The agent: one process that runs one work and speaks the protocol on a byte stream.

Started as `python -m lit.runtime.agent`. The protocol runs on the stdin/stdout it was started with; the
work's own stdout/stderr (and those of its child processes) are captured through pipes and forwarded as
log frames, so nothing the user prints can corrupt the channel. Runs on Python 3.9+ with the standard
library only: it is shipped to remote machines.
"""

from __future__ import annotations

import io
import itertools
import os
import pathlib
import platform
import queue
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Optional

from . import codec, context
from .errors import LitError, ProtocolError
from .protocol import PROTOCOL_VERSION, Frame, Peer, check_hello

_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_DIAGNOSTICS_FD = 2  # the agent's own stderr, kept apart from the work's once output is captured
DEFAULT_HOST = "127.0.0.1"
TRANSFER_ATTEMPTS = 5  # a file cut by lost connections is asked for (or sent) again this many times


class Agent:
    """Runs one work. `stdio`: the protocol is on the stdin/stdout it was started with, and the end of that
    stream ends the work. `detached`: it listens on a unix socket and outlives any one connection (an SSH
    session relays to it); it ends its work only after hearing nothing for the orphan timeout."""

    def __init__(self, captured: list[tuple[int, str]], detached: bool = False,
                 host_log: Optional[str] = None) -> None:
        self.captured = captured
        self.detached = detached
        self.peer = Peer()
        self.lock = threading.Lock()  # guards the peer and the current connection
        self.log_lock = threading.Lock()
        self.out_fd: Optional[int] = None
        self.partial: dict[int, bytes] = {fd: b"" for fd, _ in captured}
        self.inbox: queue.Queue[Frame] = queue.Queue()
        self.work: Any = None
        self.sent: dict[str, str] = {}  # attribute -> canonical JSON last sent to the orchestrator
        self.last_heard = time.monotonic()
        self.heartbeat = 10.0
        self.orphan_timeout = 120.0
        self.poweroff: Optional[list[str]] = None
        self.current_call: Optional[int] = None
        self.ending = False
        self.host_log = open(host_log, "a", encoding="utf-8") if host_log else None  # noqa: SIM115
        self.cleanup: list[str] = []  # files and lease folders this agent removes as it ends
        self.store: Any = None  # where published files go (storage.FileStore)
        self.connections = 0  # how many times the orchestrator said hello: each is a new connection
        self.cancelled: set[str] = set()  # transfers whose receiver gave up: not sent on
        self.incoming: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    # -- output -----------------------------------------------------------------------------------
    def send(self, type_: str, **fields: Any) -> None:
        with self.lock:
            self._write(self.peer.send(type_, **fields))

    def control(self, type_: str, **fields: Any) -> None:
        with self.lock:
            self._write(self.peer.control(type_, **fields))

    def _write(self, data: bytes) -> None:
        """Write to the current connection (caller holds the lock). Without one, the peer keeps the frame."""
        fd = self.out_fd
        if fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            self.out_fd = None
            if not self.detached:
                threading.Thread(target=self.end_tree, args=("the orchestrator closed the channel",)).start()

    # -- connections ------------------------------------------------------------------------------
    def connect(self, in_fd: int, out_fd: int) -> None:
        """Serve one connection until it ends. Say hello on it; frames go out on it only after the
        orchestrator's hello, replayed from where it got to, so the stream stays in sequence."""
        hello = self.peer.control("hello", proto=PROTOCOL_VERSION, received=self.peer.received_seq,
                                  pid=os.getpid(), python=platform.python_version(), host=socket.gethostname())
        with self.lock:
            self.out_fd = None
            self.peer.reset_stream()
            try:
                _write_all(out_fd, hello)
            except OSError:
                return
        self.read_loop(in_fd, out_fd)

    def read_loop(self, fd: int, out_fd: int) -> None:
        """Frames from the orchestrator. Calls go to the main thread; control frames are handled here."""
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                if not self.detached:
                    self.end_tree("the orchestrator closed the channel")
                return  # detached: the connection's thread forgets it; the orphan timer keeps running
            self.last_heard = time.monotonic()
            try:
                with self.lock:
                    frames = self.peer.feed(data)
            except ProtocolError as exc:
                self.send("error", message=str(exc))
                self.end_tree(str(exc))
                return
            for frame in frames:
                kind = frame["t"]
                if kind == "hello":
                    try:
                        check_hello(frame)
                    except ProtocolError as exc:
                        self.control("error", message=str(exc))
                        self.end_tree(str(exc))
                        return
                    with self.lock:
                        self.out_fd = out_fd
                        self.connections += 1
                        for replay in self.peer.replay_after(int(frame.get("received", 0))):
                            self._write(replay)
                    if self.connections > 1:
                        self._transfers_cut()
                elif kind in ("chunk", "chunk_end"):
                    self.on_chunk(frame)
                elif kind == "serve":
                    self.serve_file(frame)
                elif kind == "serve_cancel":
                    self.cancelled.add(str(frame.get("xfer")))
                elif kind == "reply":
                    waiter = self.waiting.get(frame.get("re", ""))
                    if waiter is not None:
                        waiter["reply"] = frame
                        waiter["event"].set()
                elif kind == "stop":
                    self.stop()
                    return
                elif kind == "bye":
                    self.end_tree("")
                    return
                elif kind not in ("hb", "ack"):
                    self.inbox.put(frame)
            with self.lock:
                if self.peer.ack_due():
                    self._write(self.peer.control("ack"))

    def accept_loop(self, server: socket.socket) -> None:
        """Detached mode: each new connection replaces the previous one (the orchestrator reconnected)."""
        while True:
            conn, _ = server.accept()
            fd = conn.detach()
            with self.lock:
                old = self.out_fd
                self.out_fd = None
            if old is not None:
                try:
                    socket.socket(fileno=os.dup(old)).shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threading.Thread(target=self._serve_connection, args=(fd,), daemon=True).start()

    def _serve_connection(self, fd: int) -> None:
        try:
            self.connect(fd, fd)
        finally:
            with self.lock:
                if self.out_fd == fd:
                    self.out_fd = None
            try:
                os.close(fd)
            except OSError:
                pass

    def log_loop(self) -> None:
        selector = selectors.DefaultSelector()
        for fd, stream in self.captured:
            selector.register(fd, selectors.EVENT_READ, stream)
        while selector.get_map():
            for key, _ in selector.select():
                with self.log_lock:
                    if not self._pump(key.fd, key.data):
                        selector.unregister(key.fd)

    def _pump(self, fd: int, stream: str, final: bool = False) -> bool:
        """Forward complete lines waiting on `fd`; with `final`, also a trailing partial line."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        data = self.partial[fd] + chunk
        *lines, rest = data.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        self.partial[fd] = rest
        for line in lines:
            self.emit_log(stream, line)
        return True

    def drain_logs(self) -> None:
        """Forward everything the work printed so far (before its final status)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        with self.log_lock:
            for fd, stream in self.captured:
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    if not chunk:
                        break
                    self.partial[fd] += chunk
                lines = self.partial[fd].split(b"\n")
                self.partial[fd] = b""
                if lines and not lines[-1]:
                    lines.pop()
                for line in lines:
                    self.emit_log(stream, line)

    def emit_log(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace")
        if self.host_log is not None:
            self.host_log.write(line + "\n")
            self.host_log.flush()
        self.send("log", stream=stream, line=line)

    def heartbeat_loop(self) -> None:
        while True:
            time.sleep(min(self.heartbeat, max(self.orphan_timeout / 4, 0.05)))
            silent = time.monotonic() - self.last_heard
            if silent > self.orphan_timeout:
                self.end_tree(f"no word from the orchestrator for {silent:.0f} s (orphan timeout)",
                              power_off=True)
                return
            self.control("hb")

    # -- the work ---------------------------------------------------------------------------------
    def serve(self) -> int:
        threading.Thread(target=self.log_loop, name="lit-agent-log", daemon=True).start()
        init = self.inbox.get()
        try:
            self.setup(init)
        except BaseException as exc:  # report anything, including SystemExit from the user's module
            formatted = _format_user_traceback(exc)
            self.send("error", message=f"{type(exc).__name__}: {exc}", traceback=formatted)
            self.drain_logs()
            self.end_tree("")
        threading.Thread(target=self.heartbeat_loop, name="lit-agent-hb", daemon=True).start()
        while True:
            frame = self.inbox.get()
            if frame["t"] == "call":
                self.run_call(frame)

    def setup(self, init: Frame) -> None:
        if init.get("t") != "init":
            raise ProtocolError(f"expected init, got {init.get('t')!r}")
        self.heartbeat = float(init.get("heartbeat", self.heartbeat))
        self.orphan_timeout = float(init.get("orphan_timeout", self.orphan_timeout))
        self.poweroff = init.get("poweroff")
        for lease in init.get("leases") or []:
            # GPU leases are folders on the host; our PID in them tells other runs the lease is alive.
            with open(os.path.join(lease, "pid"), "w") as fh:
                fh.write(str(os.getpid()))
            self.cleanup.append(lease)
        os.environ.update(init.get("env") or {})
        self.store = _make_store(self, init.get("storage") or {})
        context.agent_store = self.store
        workdir = init["workdir"]
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        import warnings

        from .compat import LightningCompatWarning
        from .loader import load_app

        warnings.simplefilter("ignore", LightningCompatWarning)  # the orchestrator already warned
        app = load_app(init["app"])
        work = app.find(init["work"])
        if work is None:
            work = _recreate(init)
        from .work import LightningWork

        if not isinstance(work, LightningWork):
            raise LitError(f"{init['work']} is not a LightningWork in {init['app']}")
        object.__setattr__(work, "_lit_name", init["work"])
        if init.get("port") is not None:
            object.__setattr__(work, "_lit_port", init["port"])
        object.__setattr__(work, "_lit_internal_ip", init.get("internal_ip", ""))
        if init.get("bind_host") and work.host == DEFAULT_HOST:
            object.__setattr__(work, "_lit_host", init["bind_host"])  # on its own machine: reachable by others
        self.work = work
        context.agent_work = work
        for name, value in work._lit_vars().items():
            try:
                self.sent[name] = codec.dumps(codec.encode(value))
            except LitError:
                pass
        object.__setattr__(work, "_lit_sink", self.on_state)
        self.send("ready", pid=os.getpid())
        work.on_start()

    def on_state(self, name: str, encoded: Any) -> None:
        text = codec.dumps(encoded)
        if self.sent.get(name) == text:
            return
        self.sent[name] = text
        self.send("state", d={name: encoded})

    def run_call(self, frame: Frame) -> None:
        work = self.work
        call_id = frame["id"]
        for name, value in (frame.get("state") or {}).items():
            object.__setattr__(work, name, codec.decode(value))
            self.sent[name] = codec.dumps(value)
        args = codec.decode(frame.get("args") or [])
        kwargs = codec.decode(frame.get("kwargs") or {})
        self.current_call = call_id
        self.send("status", call=call_id, stage="running")
        stage, message, formatted = "succeeded", None, None
        object.__setattr__(work, "_lit_executing", True)
        try:
            self.prepare_inputs(args, kwargs)  # received Paths: their files are here before run() starts
            result = type(work).run(work, *args, **kwargs)
            if result is not None:
                raise LitError(f"{type(work).__name__}.run() returned {result!r}; a work's run() must return "
                               "None: publish results as public attributes (self.result = ...)")
            self.flush_state(strict=True)  # a non-JSON value changed in place fails the call, naming it
        except SystemExit as exc:
            if exc.code not in (None, 0):
                stage, message = "failed", f"SystemExit: {exc.code}"
                formatted = _format_user_traceback(exc)
        except BaseException as exc:
            stage, message = "failed", f"{type(exc).__name__}: {exc}"
            formatted = _format_user_traceback(exc)
        finally:
            object.__setattr__(work, "_lit_executing", False)
        try:
            self.publish_outputs()  # durable before the final status: a stopped machine never holds the only copy
        except BaseException as exc:
            if stage == "succeeded":
                stage, message = "failed", f"{type(exc).__name__}: {exc}"
                formatted = _format_user_traceback(exc)
        self.drain_logs()
        self.flush_state()
        self.current_call = None
        self.send("status", call=call_id, stage=stage, message=message, traceback=formatted)

    def prepare_inputs(self, args: Any, kwargs: Any) -> None:
        if self.store is None:
            return
        from .storage import ensure_present, paths_in

        for path in paths_in([args, kwargs, self.work._lit_vars()]):
            ensure_present(path, self.store)

    def publish_outputs(self) -> None:
        """Hash and store every file this work published as a Path or Payload in its state."""
        if self.store is None:
            return
        from .storage import paths_in, payloads_in, sha256_of

        me = self.work.name
        state = self.work._lit_vars()
        for payload in payloads_in(state):
            if payload.path._lit_origin in (None, me) and payload._loaded:
                payload.path._lit_origin = me
                payload._write()
        for path in paths_in(state):
            if path._lit_origin not in (None, me):
                continue
            path._lit_origin = me
            file = pathlib.Path(path) if pathlib.Path(path).is_absolute() else pathlib.Path.cwd() / path
            if not file.is_file():
                path._lit_sha256, path._lit_size = "", 0  # published, never written: receivers say so
                continue
            digest = sha256_of(file)
            self.store.publish(file, digest)
            path._lit_sha256, path._lit_size = digest, file.stat().st_size

    # -- transfers through the orchestrator (relay store) -----------------------------------------
    def request(self, type_: str, **fields: Any) -> Frame:
        """Send a request and wait for its reply (from the work's thread)."""
        rid = f"{os.getpid()}-{next(self._ids)}"
        waiter: dict[str, Any] = {"event": threading.Event()}
        self.waiting[rid] = waiter
        self.send(type_, rid=rid, **fields)
        waiter["event"].wait()
        del self.waiting[rid]
        return waiter["reply"]

    def receive_file(self, target: pathlib.Path, type_: str, **fields: Any) -> None:
        """Ask for a file; its chunks arrive as control frames and are written to `target`. Chunks are not kept
        for replay, so a transfer cut by a lost connection (this one, or the producer's) is asked for again."""
        from .storage import TransferError, partial_name

        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(TRANSFER_ATTEMPTS):
            xfer = f"{os.getpid()}-{next(self._ids)}"
            tmp = partial_name(target, xfer)
            incoming = {"file": open(tmp, "wb"), "event": threading.Event(), "error": None,  # noqa: SIM115
                        "again": False, "connection": self.connections}
            self.incoming[xfer] = incoming
            self.send(type_, xfer=xfer, **fields)
            incoming["event"].wait()
            del self.incoming[xfer]
            incoming["file"].close()
            if incoming["again"]:
                tmp.unlink()
                self.control("xfer_cancel", xfer=xfer)  # its sender may still be sending: no one reads it now
                continue
            if incoming["error"]:
                tmp.unlink()
                raise TransferError(f"{target.name}: {incoming['error']}")
            os.replace(tmp, target)
            return
        raise TransferError(f"{target.name}: the transfer was cut by lost connections {TRANSFER_ATTEMPTS} times")

    def _transfers_cut(self) -> None:
        """A new connection: the chunks of files on their way here may have been lost with the old one."""
        for incoming in list(self.incoming.values()):
            if incoming["connection"] < self.connections:  # asked for before this connection
                incoming["again"] = True
                incoming["event"].set()

    def send_file(self, xfer: str, source: pathlib.Path) -> None:
        """Stream a file as chunk frames (control frames: large data is not kept for replay). If the connection
        changes meanwhile the rest is not sent: the receiver asks again."""
        from .storage import chunk_frames

        connection = self.connections
        try:
            for data in chunk_frames(xfer, source):
                with self.lock:
                    if self.connections != connection or self.out_fd is None or xfer in self.cancelled:
                        return
                    self._write(data)
            self.control("chunk_end", xfer=xfer, ok=True)
        except OSError as exc:
            self.control("chunk_end", xfer=xfer, ok=False, error=f"cannot read it on its machine: {exc}")
        finally:
            self.cancelled.discard(xfer)

    def on_chunk(self, frame: Frame) -> None:
        incoming = self.incoming.get(frame.get("xfer", ""))
        if incoming is None:
            return
        if frame["t"] == "chunk":
            import base64

            incoming["file"].write(base64.b64decode(frame["b"]))
            return
        if frame.get("again"):  # the sender's connection was lost meanwhile
            incoming["again"] = True
        elif not frame.get("ok"):
            incoming["error"] = frame.get("error") or "the transfer failed"
        incoming["event"].set()

    def serve_file(self, frame: Frame) -> None:
        """The orchestrator asks for a file this work published (relay store)."""
        source = pathlib.Path(self.store.cache) / frame["sha"] if self.store is not None else None
        if source is None or not source.is_file():
            self.control("chunk_end", xfer=frame["xfer"], ok=False, error="it is not on its producer's machine")
            return
        threading.Thread(target=self.send_file, args=(frame["xfer"], source), daemon=True).start()

    def flush_state(self, strict: bool = False) -> None:
        """Send attributes changed in place (list.append, dict[k] = v) since they were last sent."""
        changed = {}
        for name, value in self.work._lit_vars().items():
            try:
                encoded = codec.encode(value, f"{type(self.work).__name__}.{name}")
            except LitError:
                if strict:
                    raise
                continue
            text = codec.dumps(encoded)
            if self.sent.get(name) != text:
                self.sent[name] = text
                changed[name] = encoded
        if changed:
            self.send("state", d=changed)

    def stop(self) -> None:
        try:
            self.work.on_exit()
        except Exception:
            traceback.print_exc()
        self.drain_logs()
        self.send("status", call=self.current_call, stage="stopped", message="stopped by the flow")
        self.send("bye")
        self.end_tree("")

    def end_tree(self, reason: str, power_off: bool = False) -> None:
        """End the work's whole process tree and this process. Powers off only when told to at init."""
        if self.ending:
            return
        self.ending = True
        if not power_off:
            try:
                self.drain_logs()  # what the work printed so far still reaches the terminal
            except OSError:
                pass
        if reason:
            try:  # to the agent's own log (fd 2 now feeds the work's captured output)
                os.write(_DIAGNOSTICS_FD, f"lit agent: {reason}; ending the work\n".encode())
            except OSError:
                pass
        _kill_descendants()
        for path in self.cleanup:
            if os.path.isdir(path):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                _unlink(path)
        if power_off and self.poweroff:
            import subprocess

            subprocess.run(self.poweroff, check=False)
        os._exit(0)


def _make_store(agent: Agent, spec: dict[str, Any]) -> Any:
    from . import storage

    kind = spec.get("kind")
    if kind == "local":
        return storage.LocalStore(spec["artifacts"], spec["drives"])
    if kind == "relay":
        return RelayStore(agent, spec["cache"])
    if kind == "urls":
        return UrlStore(agent, spec["cache"])
    return None


class RelayStore:
    """Files stay on the producer's machine (in a cache, frozen by a hard link); the orchestrator streams them
    to whoever needs them over the connections it already has. Drives live with the orchestrator."""

    def __init__(self, agent: Agent, cache: str) -> None:
        self.agent = agent
        self.cache = cache

    def publish(self, file: pathlib.Path, sha256: str) -> None:
        from .storage import freeze

        target = pathlib.Path(self.cache) / sha256
        if not target.exists():
            freeze(file, target)

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None:
        self.agent.receive_file(target, "fetch", sha=sha256, origin=origin)

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None:
        for _ in range(TRANSFER_ATTEMPTS):
            reply = self.agent.request("drive_put_begin", drive=drive, key=key)
            self.agent.send_file(reply["xfer"], source)
            done = self.agent.request("drive_put_done", xfer=reply["xfer"])
            if done.get("ok"):
                return
            if not done.get("again"):  # cut by a lost connection: sent again, else a real error
                raise OSError(f"lit://{drive}: put {key} failed: {done.get('error')}")
        raise OSError(f"lit://{drive}: put {key} was cut by lost connections {TRANSFER_ATTEMPTS} times")

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None:
        try:
            self.agent.receive_file(target, "drive_get", drive=drive, key=key)
        except LitError as exc:
            raise FileNotFoundError(f"lit://{drive}: no {key} ({exc})") from None

    def drive_list(self, drive: str, prefix: str) -> list[str]:
        return list(self.agent.request("drive_list", drive=drive, prefix=prefix).get("items", []))

    def drive_delete(self, drive: str, key: str) -> None:
        reply = self.agent.request("drive_delete", drive=drive, key=key)
        if not reply.get("ok"):
            raise FileNotFoundError(f"lit://{drive}: no {key}")


class UrlStore(RelayStore):
    """Files go to an object store through short-lived presigned URLs the orchestrator hands out for exactly
    the objects needed; the machine holds no credentials."""

    def _url(self, op: str, key: str) -> str:
        reply = self.agent.request("presign", op=op, key=key)
        if not reply.get("url"):
            raise LitError(f"no URL to {op} {key}: {reply.get('error')}")
        return str(reply["url"])

    def publish(self, file: pathlib.Path, sha256: str) -> None:
        import urllib.request

        super().publish(file, sha256)
        size = file.stat().st_size
        with open(file, "rb") as fh:
            request = urllib.request.Request(self._url("put", f"artifacts/{sha256}"), data=fh, method="PUT",
                                             headers=_put_headers(size))
            with urllib.request.urlopen(request, timeout=600) as response:  # a presigned URL
                response.read()

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None:
        self._download(self._url("get", f"artifacts/{sha256}"), target)

    def _download(self, url: str, target: pathlib.Path) -> None:
        import shutil
        import urllib.error
        import urllib.request

        from .storage import TransferError, partial_name

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(target, os.getpid())
        try:
            with urllib.request.urlopen(url, timeout=600) as response, open(tmp, "wb") as fh:
                shutil.copyfileobj(response, fh, 1024 * 1024)
        except urllib.error.HTTPError as exc:
            raise TransferError(f"{target.name}: the store answered {exc.code}") from None
        os.replace(tmp, target)

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None:
        import urllib.request

        with open(source, "rb") as fh:
            request = urllib.request.Request(self._url("put", f"drives/{drive}/{key}"), data=fh, method="PUT",
                                             headers=_put_headers(source.stat().st_size))
            with urllib.request.urlopen(request, timeout=600) as response:
                response.read()

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None:
        try:
            self._download(self._url("get", f"drives/{drive}/{key}"), target)
        except LitError as exc:
            raise FileNotFoundError(f"lit://{drive}: no {key} ({exc})") from None


def _put_headers(size: int) -> dict[str, str]:
    # An explicit type: urllib would label the body a form, and an object store may parse it as one.
    return {"Content-Length": str(size), "Content-Type": "application/octet-stream"}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _recreate(init: Frame) -> Any:
    """Re-create a work that a flow made inside run(): its class and constructor arguments."""
    import importlib

    spec = init.get("cls")
    if not spec:
        raise LitError(f"{init['work']} is not in the app's component tree and cannot be re-created")
    module_name, _, qualname = spec.partition(":")
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part)
    if init.get("init") is None:
        raise LitError(f"{init['work']} was created inside run() with constructor arguments that are not "
                       "JSON-serializable, so its process cannot re-create it")
    args, kwargs = codec.decode(init["init"])
    return target(*args, **kwargs)


def _descendants() -> list[int]:
    """PIDs of every process below this one (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_descendants() -> None:
    """SIGKILL every process below this one, and the rest of our process group (daemonized helpers)."""
    me = os.getpid()
    for pid in _descendants():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if os.getpgid(0) == me:  # we lead our own group: whatever is left in it is the work's
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if entry.isdigit() and int(entry) != me:
                try:
                    if os.getpgid(int(entry)) == me:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


def _format_user_traceback(exc: BaseException) -> str:
    """The traceback without lit's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) != _RUNTIME_DIR]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _capture_output() -> list[tuple[int, str]]:
    """Point fds 0, 1, 2 away from the protocol: stdin at /dev/null, stdout and stderr into pipes we read."""
    global _DIAGNOSTICS_FD
    _DIAGNOSTICS_FD = os.dup(2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    captured = []
    for fd, stream in ((1, "stdout"), (2, "stderr")):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        os.set_blocking(read_end, False)
        captured.append((read_end, stream))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True)
    os.environ["PYTHONUNBUFFERED"] = "1"  # child Python processes print live too
    return captured


def run_stdio() -> int:
    proto_in, proto_out = os.dup(0), os.dup(1)
    agent = Agent(_capture_output())
    threading.Thread(target=agent.connect, args=(proto_in, proto_out), name="lit-agent-read",
                     daemon=True).start()
    return agent.serve()


def run_detached(socket_path: str, host_log: Optional[str]) -> int:
    """Detach from the caller's session, listen on `socket_path`, print "ready PID" once listening."""
    ready_r, ready_w = os.pipe()
    if os.fork() > 0:
        os.close(ready_w)
        message = os.read(ready_r, 200).decode().strip()
        print(message or "failed: the agent did not start (see its log)")
        return 0 if message.startswith("ready") else 1
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    try:
        directory = os.path.dirname(socket_path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(socket_path)
        os.chmod(socket_path, 0o600)
        server.listen(4)
    except OSError as exc:
        os.write(ready_w, f"failed: cannot listen on {socket_path}: {exc}".encode())
        os._exit(1)
    # Nothing of the SSH session that started us may stay open here, or it never ends: our own diagnostics
    # go to a file beside the socket.
    diagnostics = os.open(socket_path + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(diagnostics, 2)
    os.close(diagnostics)
    agent = Agent(_capture_output(), detached=True, host_log=host_log)
    pid_file = socket_path + ".pid"
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    agent.cleanup += [socket_path, pid_file]  # the .log stays: why the agent ended
    signal.signal(signal.SIGTERM, lambda *_: agent.end_tree("terminated (SIGTERM)"))
    os.write(ready_w, f"ready {os.getpid()}".encode())
    os.close(ready_w)
    threading.Thread(target=agent.accept_loop, args=(server,), name="lit-agent-accept", daemon=True).start()
    threading.Thread(target=agent.heartbeat_loop, name="lit-agent-hb", daemon=True).start()
    return agent.serve()


def run_forkserver(control_fd: int) -> int:
    """Local runs: one process that has imported lit forks each work's agent (a fresh interpreter per work
    costs ~70 ms of CPU and ~10 MB; a fork costs a few ms and shares lit's pages).

    Requests arrive on the control socket: a JSON line with cwd, env and log path, plus the agent's stream as
    a passed fd. Replies: {"pid": N}, and {"exit": N, "status": S} when a child ends."""
    import array
    import json
    import select

    import lit  # noqa: F401 - what every work's app imports: loaded once, shared by every fork

    control = socket.socket(fileno=control_fd)
    children: set[int] = set()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            control.send(json.dumps({"exit": pid, "status": code}).encode())

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # lit ends us; Ctrl-C goes to lit
    while True:
        readable, _, _ = select.select([control, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            reap()
        if control not in readable:
            continue
        fds = array.array("i")
        data, ancdata, _, _ = control.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
        if not data:
            return 0
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        # One request per message (a SOCK_SEQPACKET socket): its JSON and the agent's stream as a passed fd.
        request = json.loads(data)
        stream = fds[0]
        for extra in fds[1:]:
            os.close(extra)
        pid = os.fork()
        if pid == 0:
            _forked_agent(request, stream, control, wake_r, wake_w)
        os.close(stream)
        children.add(pid)
        control.send(json.dumps({"pid": pid}).encode())
        reap()


def _forked_agent(request: dict[str, Any], stream: int, control: socket.socket, wake_r: int, wake_w: int) -> None:
    """In the forked child: become the work's agent, as if started fresh in its own directory."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        control.close()
        os.close(wake_r)
        os.close(wake_w)
        os.setsid()  # its own process group: lit ends a work and its children with one killpg
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if sys.path and sys.path[0] not in ("",):
            sys.path[0] = request["cwd"]
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 2)
        os.close(log)
        os.dup2(stream, 0)
        os.dup2(stream, 1)
        os.close(stream)
        code = run_stdio()
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lit.runtime.agent", description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    sub.add_parser("stdio", help="the protocol on stdin/stdout (the default)")
    detached = sub.add_parser("detached", help="detach and listen on a unix socket")
    detached.add_argument("--socket", required=True)
    detached.add_argument("--log", default=None, help="also keep the work's output in this file")
    forkserver = sub.add_parser("forkserver", help="fork local agents on request (lit run's local launcher)")
    forkserver.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "forkserver":
        return run_forkserver(args.control_fd)
    if args.mode == "detached":
        return run_detached(args.socket, args.log)
    return run_stdio()


if __name__ == "__main__":
    sys.exit(main())
