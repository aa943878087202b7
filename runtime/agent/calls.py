"""The work in the agent: loading it from the init frame (or re-creating it), running its calls, its files in
and out around each call, and its state back to the orchestrator."""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import traceback
from typing import Any, Optional

from .. import codec, context
from ..errors import LitError, ProtocolError
from ..protocol import Frame, FrameType
from .state import AgentState
from .stores import make_store

DEFAULT_HOST = "127.0.0.1"
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
_LIT_DIRS = (_AGENT_DIR, os.path.dirname(_AGENT_DIR))  # lit's runtime and this agent: left out of tracebacks


class Calls(AgentState):
    def serve(self) -> int:
        threading.Thread(target=self.log_loop, name="lit-agent-log", daemon=True).start()
        init = self.inbox.get()
        try:
            self.setup(init)
        except BaseException as exc:  # report anything, including SystemExit from the user's module
            formatted = format_user_traceback(exc)
            self.send(FrameType.ERROR, message=f"{type(exc).__name__}: {exc}", traceback=formatted)
            self.drain_logs()
            self.end_tree("")
        threading.Thread(target=self.heartbeat_loop, name="lit-agent-hb", daemon=True).start()
        while True:
            frame = self.inbox.get()
            if frame["t"] == FrameType.CALL:
                self.run_call(frame)

    def setup(self, init: Frame) -> None:
        if init.get("t") != FrameType.INIT:
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
        self.store = make_store(self, init.get("storage") or {})
        context.agent_store = self.store
        context.in_agent = True
        workdir = init["workdir"]
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        import warnings

        from ..compat import LightningCompatWarning
        from ..loader import load_app

        warnings.simplefilter("ignore", LightningCompatWarning)  # the orchestrator already warned
        app = load_app(init["app"])
        work = app.find(init["work"])
        if work is None:
            work = recreate(init)
        from ..work import LightningWork

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
        self.send(FrameType.READY, pid=os.getpid())
        work.on_start()

    def on_state(self, name: str, encoded: Any) -> None:
        text = codec.dumps(encoded)
        if self.sent.get(name) == text:
            return
        self.sent[name] = text
        self.send(FrameType.STATE, d={name: encoded})

    def run_call(self, frame: Frame) -> None:
        work = self.work
        call_id = frame["id"]
        for name, value in (frame.get("state") or {}).items():
            object.__setattr__(work, name, codec.decode(value))
            self.sent[name] = codec.dumps(value)
        args = codec.decode(frame.get("args") or [])
        kwargs = codec.decode(frame.get("kwargs") or {})
        self.current_call = call_id
        self.send(FrameType.STATUS, call=call_id, stage="running")
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
                formatted = format_user_traceback(exc)
        except BaseException as exc:
            stage, message = "failed", f"{type(exc).__name__}: {exc}"
            formatted = format_user_traceback(exc)
        finally:
            object.__setattr__(work, "_lit_executing", False)
        try:
            self.publish_outputs()  # durable before the final status: a stopped machine never holds the only copy
        except BaseException as exc:
            if stage == "succeeded":
                stage, message = "failed", f"{type(exc).__name__}: {exc}"
                formatted = format_user_traceback(exc)
        self.drain_logs()
        self.flush_state()
        self.current_call = None
        self.send(FrameType.STATUS, call=call_id, stage=stage, message=message, traceback=formatted)

    def prepare_inputs(self, args: Any, kwargs: Any) -> None:
        if self.store is None:
            return
        from ..storage import ensure_present, paths_in

        for path in paths_in([args, kwargs, self.work._lit_vars()]):
            ensure_present(path, self.store)

    def publish_outputs(self) -> None:
        """Hash and store every file this work published as a Path or Payload in its state."""
        if self.store is None:
            return
        from ..storage import paths_in, payloads_in, sha256_of

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
            self.send(FrameType.STATE, d=changed)

    def on_stop(self, frame: Frame) -> Optional[bool]:
        self.stop()
        return True

    def stop(self) -> None:
        try:
            self.work.on_exit()
        except Exception:
            traceback.print_exc()
        self.drain_logs()
        if self.current_call is not None:  # between calls, the last call's outcome stands (MultiNode stops done nodes)
            self.send(FrameType.STATUS, call=self.current_call, stage="stopped", message="stopped by the flow")
        self.send(FrameType.BYE)
        self.end_tree("")


def recreate(init: Frame) -> Any:
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


def format_user_traceback(exc: BaseException) -> str:
    """The traceback without lit's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) not in _LIT_DIRS]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)
