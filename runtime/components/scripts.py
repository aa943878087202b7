"""Script works, as Lightning's `lightning.app.components.python` has them.

`PopenPythonScript` runs a Python script in a child process of the work: its output is the work's log, and a
non-zero exit fails the work with the script's last lines. `TracerPythonScript` runs the script inside the work's
process (runpy, as Lightning does), so a `Tracer` can wrap methods of the classes the script uses; the names in
`outputs` become Payload attributes of the work when the script ends.

A relative `script_path` is looked up in the app's folder (the folder lit ships to remote machines), then in the
current directory. One found through the current directory inside the app's folder is kept relative to the app's
folder, so the same path works where the app is shipped.
"""

from __future__ import annotations

import collections
import functools
import os
import runpy
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path as _FsPath
from typing import Any, Optional, Union

from .. import context
from ..compat import reject
from ..errors import LitError
from ..loader import APP_MODULE
from ..storage import Payload
from ..work import LightningWork

LAST_LINES = 20  # how much of a failed script's output its work's failure shows


class ScriptFailed(LitError):
    """A script work's script exited with a non-zero code."""


def _app_dir() -> Optional[_FsPath]:
    module = sys.modules.get(APP_MODULE)
    file = getattr(module, "__file__", None)
    return _FsPath(file).resolve().parent if file else None


def _locate(script_path: str) -> tuple[Optional[_FsPath], str]:
    """(the script's file if found, the path to keep): absolute as given; relative, in the app's folder first,
    then in the current directory (kept relative to the app's folder when it lies inside it)."""
    given = _FsPath(script_path)
    if given.is_absolute():
        return (given if given.is_file() else None), script_path
    app_dir = _app_dir()
    if app_dir is not None and (app_dir / given).is_file():
        return app_dir / given, script_path
    here = given.resolve()
    if here.is_file():
        if app_dir is not None and here.is_relative_to(app_dir):
            return here, str(here.relative_to(app_dir))
        return here, str(here)
    return None, script_path


def _script_args(script_args: Optional[Union[str, list[str]]]) -> list[str]:
    if isinstance(script_args, str):
        return script_args.split(" ")  # as Lightning: a string is split on spaces
    return [str(arg) for arg in script_args or []]


def _checked(script_path: Union[str, os.PathLike[str]]) -> str:
    found, kept = _locate(os.fspath(script_path))
    # The agent loads the app in the work's own folder, where a path the user gave relative to where `lit run`
    # started is not found; the path kept here reaches the agent with the work's state before its first call.
    if found is None and not context.in_agent:
        where = f" or in the app's folder {_app_dir()}" if _app_dir() is not None else ""
        raise FileNotFoundError(f"script {script_path}: no such file in {os.getcwd()}{where}")
    return kept


class PopenPythonScript(LightningWork):
    """Run a Python script (`script_path` with `script_args`, `env` added to the work's environment) in a child
    process; its exit code decides the work's status."""

    def on_before_run(self) -> None:
        """Called before the script starts."""

    def on_after_run(self) -> None:
        """Called after the script exited with 0."""

    def configure_tracer(self) -> Tracer:
        """Lightning's hook for its tracer mode; a Popen script is not traced (see TracerPythonScript)."""
        return Tracer()

    def __init__(self, script_path: Union[str, os.PathLike[str]],
                 script_args: Optional[Union[str, list[str]]] = None, env: Optional[dict[str, str]] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script_path = _checked(script_path)
        self.script_args = _script_args(script_args)
        self.env = dict(env) if env else None
        self.pid: Optional[int] = None
        self.exit_code: Optional[int] = None

    def run(self) -> None:
        self.on_before_run()
        self._run_with_subprocess_popen()
        self.on_after_run()

    def _run_with_subprocess_popen(self) -> None:
        found, _ = _locate(self.script_path)
        if found is None:
            raise FileNotFoundError(f"script {self.script_path}: no such file here ({os.getcwd()}) or in the app's "
                                    f"folder {_app_dir()}")
        # The work's environment plus `env` (Lightning replaced the whole environment, which loses PATH and
        # PYTHONPATH; adding is what a script expects).
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        last: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        with subprocess.Popen([sys.executable, str(found), *self.script_args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, close_fds=True) as proc:
            self.pid = proc.pid
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip("\n")
                last.append(line)
                print(line, flush=True)  # the work's output is its log, line by line as the script writes it
            self.exit_code = proc.wait()
        if self.exit_code != 0:
            tail = "\n".join(f"  | {line}" for line in last) or "  (it printed nothing)"
            raise ScriptFailed(f"{self.script_path} exited with code {self.exit_code}; its last lines:\n{tail}")


class Tracer:
    """Wraps methods of classes while a script runs (Lightning's `lightning.app.utilities.tracer.Tracer`): each
    `add_traced(cls, name, pre_fn=..., post_fn=...)` method runs `pre_fn(self, *args, **kwargs)` first, which
    returns `(record, args, kwargs)`, and `post_fn(self, result)` after, which returns `(record, result)`. The
    records, per class, instance and method, are in the script's result as `tracer_res`."""

    def __init__(self) -> None:
        self.methods: list[tuple[type, str, Optional[Callable[..., Any]], Optional[Callable[..., Any]]]] = []
        self.res: dict[str, Any] = {}
        self._originals: list[tuple[type, str, Any]] = []

    def add_traced(self, cls: type, method_name: str, stack_level: int = 1,
                   pre_fn: Optional[Callable[..., Any]] = None, post_fn: Optional[Callable[..., Any]] = None) -> None:
        self.methods.append((cls, method_name, pre_fn, post_fn))

    def _wrap(self, cls: type, name: str, pre_fn: Optional[Callable[..., Any]],
              post_fn: Optional[Callable[..., Any]]) -> None:
        raw = cls.__dict__.get(name, getattr(cls, name))
        self._originals.append((cls, name, raw))
        is_classmethod = isinstance(raw, classmethod)
        fn = raw.__func__ if is_classmethod else getattr(cls, name)

        @functools.wraps(fn)
        def traced(owner: Any, *args: Any, **kwargs: Any) -> Any:
            entry: dict[str, Any] = {"call_args": dict(kwargs)}
            if pre_fn is not None:
                entry["pre"], args, kwargs = pre_fn(owner, *args, **kwargs)
            entry["call"] = {"start": time.time_ns()}
            result = fn(owner, *args, **kwargs)
            entry["call"]["end"] = time.time_ns()
            if post_fn is not None:
                entry["post"], result = post_fn(owner, result)
            calls = self.res.setdefault(cls.__qualname__, {})
            calls.setdefault(id(owner), {}).setdefault(name, []).append(entry)
            return result

        setattr(cls, name, classmethod(traced) if is_classmethod else traced)

    def trace(self, *args: str, init_globals: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Run the script `args[0]` with `args` as its sys.argv, the traced methods wrapped meanwhile; the
        script's globals, with the records as "tracer_res"."""
        script = args[0]
        saved_argv, saved_path = sys.argv[:], sys.path[:]
        sys.argv = list(args)
        sys.path.append(str(_FsPath(script).resolve().parent))
        self.res = {}
        for cls, name, pre_fn, post_fn in self.methods:
            self._wrap(cls, name, pre_fn, post_fn)
        try:
            result = runpy.run_path(script, init_globals=init_globals, run_name="__main__")
        finally:
            for cls, name, raw in reversed(self._originals):
                setattr(cls, name, raw)
            self._originals.clear()
            sys.argv, sys.path = saved_argv, saved_path
        result["tracer_res"] = {cls: [{"id": obj, **methods} for obj, methods in per.items()]
                                for cls, per in self.res.items()}
        return result


class TracerPythonScript(LightningWork):
    """Run a Python script inside the work's process (runpy), traced by `configure_tracer()`; each name in
    `outputs` becomes a Payload attribute of the work with the script's value of that global."""

    def on_before_run(self) -> None:
        """Called before the script starts."""

    def on_after_run(self, res: dict[str, Any]) -> None:
        """Called with the script's globals after it ended: publishes `outputs`."""
        for name in self.outputs:
            setattr(self, name, Payload(res[name]))

    def configure_tracer(self) -> Tracer:
        """Override to wrap methods of the classes the script uses (see Tracer.add_traced)."""
        return Tracer()

    def __init__(self, script_path: Union[str, os.PathLike[str]],
                 script_args: Optional[Union[str, list[str]]] = None, outputs: Optional[list[str]] = None,
                 env: Optional[dict[str, str]] = None, code: Optional[dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        if code is not None:
            raise reject("TracerPythonScript(code=...)", "lit ships the app's folder to every machine: put the "
                         "script there and give its path")
        super().__init__(**kwargs)
        self.script_path = _checked(script_path)
        self.script_args = _script_args(script_args)
        self.original_args = list(self.script_args)
        self.env = dict(env) if env else None
        self.outputs = list(outputs or [])
        for name in self.outputs:
            setattr(self, name, None)
        self.params: Optional[dict[str, Any]] = None
        self.restart_count = 0

    def run(self, params: Optional[dict[str, Any]] = None, restart_count: Optional[int] = None,
            code_dir: Optional[str] = ".", **kwargs: Any) -> None:
        """`params` are added to the script's arguments as `key=value`; `restart_count` only makes the call
        differ from the previous one (so it runs again); `kwargs` are globals the script starts with."""
        if restart_count:
            self.restart_count = restart_count
        if params:
            self.params = params
            self.script_args = self.original_args + [f"{key}={value}" for key, value in params.items()]
        found, _ = _locate(self.script_path)
        if found is None:
            raise FileNotFoundError(f"script {self.script_path}: no such file here ({os.getcwd()}) or in the app's "
                                    f"folder {_app_dir()}")
        init_globals = {key: value.value if isinstance(value, Payload) else value for key, value in kwargs.items()}
        previous_cwd, previous_env, previous_path = os.getcwd(), os.environ.copy(), sys.path[:]
        os.chdir(code_dir or ".")
        os.environ.update(self.env or {})
        # The script's folder is importable already while the tracer is configured, so configure_tracer imports
        # the same modules (the same classes to wrap) the script will.
        sys.path.insert(0, str(found.parent))
        self.on_before_run()
        try:
            res = self.configure_tracer().trace(str(found), *self.script_args, init_globals=init_globals)
        finally:
            os.chdir(previous_cwd)
            os.environ.clear()
            os.environ.update(previous_env)
            sys.path[:] = previous_path
        self.on_after_run(res)
