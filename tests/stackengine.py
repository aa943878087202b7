"""What the two fake stack engines share: tests/fakecloud/engine.py (moto) and tests/k8s/engine.py (a Kubernetes API
server). Each runs lit's Pulumi program under mocks in a child process (`python -m tests.<engine>.engine_run`) that
makes what it declares for real and records it in a JSON file under the lit home.

Usable without lit installed (the engines are); pulumi is imported only in the child, by `run_program`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

# The folder holding the `tests` package as this process imported it (not resolved: a folder that links only
# `tests` keeps an installed lit, not the checkout's, first on the engine's path).
TESTS_PARENT = Path(os.path.abspath(__file__)).parents[1]


class ChildEngine:
    """A StackEngine (lit.provisioner.engine's protocol; not subclassed: usable without lit installed) whose runs
    happen in a child process. `env` overrides os.environ for the child."""

    error: type[Exception] = Exception  # what the engine raises for lit's errors when lit is not installed

    def __init__(self, home: Path, env: Optional[dict[str, str]] = None, timeout: float = 300.0) -> None:
        self.home = Path(home)
        self.env = dict(env or {})
        self.timeout = timeout

    def _environ(self) -> dict[str, str]:
        """os.environ with `env`, the `tests` package first on the path, and no Pulumi update check."""
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_PARENT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
        return env

    def _lit_errors(self) -> tuple[type[Exception], type[Exception]]:
        """lit's BadInput and InfrastructureError; the engine's own error for both without lit installed."""
        try:
            from lit.runtime.errors import BadInput, InfrastructureError
        except ImportError:  # usable without lit installed
            return self.error, self.error
        return BadInput, InfrastructureError


def run_child(argv: list[str], config: dict[str, str], on_event: Callable[[str], None], env: dict[str, str],
              cwd: Path, timeout: float, what: str, error: type[Exception]) -> None:
    """Run an engine's child: the config on its stdin, each line of its stdout to `on_event`; `error` with `what`
    (e.g. "fake cloud: up of stack demo") when it takes more than `timeout` seconds or fails (the message of its
    last "error: " line on stderr, else the end of its stderr)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errfile, subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errfile, env=env, cwd=str(cwd),
            text=True, encoding="utf-8", errors="replace") as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(config))
        proc.stdin.close()
        expired = threading.Event()
        timer = threading.Timer(timeout, lambda: (expired.set(), proc.kill()))
        timer.start()
        try:
            for line in proc.stdout:
                on_event(line.rstrip("\n"))
            proc.wait()
        finally:
            timer.cancel()
        errfile.seek(0)
        err = errfile.read()
    if expired.is_set():
        raise error(f"{what} took more than {timeout:.0f}s")
    if proc.returncode != 0:
        errors = [line[len("error: "):] for line in err.splitlines() if line.startswith("error: ")]
        detail = errors[-1] if errors else (err.strip()[-2000:] or f"exit status {proc.returncode}")
        raise error(f"{what} failed: {detail}")


def child_main(run: Callable[[dict[str, str], Callable[[str], None]], Any], error: type[Exception]) -> int:
    """The child's body: `run(config, emit)` with the config from stdin and each event printed on a line of its own;
    its exit status. A failure ends with a line "error: <message>" on stderr (and the traceback, unless `error`)."""
    try:
        config = json.loads(sys.stdin.read() or "{}")
        run(config, lambda line: print(line, flush=True))
    except error as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


class RecordFile:
    """A stack's JSON record at `path` in the folder `dir`: load (None when there is none) and remove."""

    def __init__(self, dir: Path, name: str) -> None:
        self.dir = Path(dir)
        self.path = self.dir / f"{name}.json"

    def load(self) -> Optional[dict[str, Any]]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return data

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def run_program(program_spec: str, config: dict[str, str], secret_keys: list[str], mocks: Any, monitor: Any,
                project: str, stack: str, first_error: Callable[[], Optional[BaseException]],
                error: type[Exception]) -> dict[str, Any]:
    """In the child: run the program MODULE:ATTR under `mocks` and `monitor` inside the SDK's own driver (it waits
    for every outstanding RPC and output); its exports, awaited. A failure raises `error`: the first error the
    mocks met (`first_error()`) if any, as it is when it is an `error`, else what the program raised."""
    import importlib

    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.mocks import set_mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    pulumi.runtime.set_all_config(dict(config), secret_keys)
    set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    module_name, _, attr = program_spec.partition(":")
    program = getattr(importlib.import_module(module_name), attr)
    outputs: dict[str, Any] = {}

    def body() -> Any:
        program()
        root = settings.get_root_resource()

        async def collect() -> None:
            for key, value in dict(getattr(root, "outputs", {})).items():
                outputs[key] = await pulumi.Output.from_input(value).future()

        return collect()

    try:
        _sync_await(run_pulumi_func(body))
    except BaseException as exc:
        cause = first_error() or exc
        if isinstance(cause, error):
            raise cause from None
        raise error(f"the program failed: {type(cause).__name__}: {cause}") from cause
    return outputs
