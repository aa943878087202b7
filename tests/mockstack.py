"""A Pulumi program run under mocks, one child interpreter per config; what tests/test_stack_policies.py and
tests/test_k8s_stack.py share.

Pulumi's runtime state is process-global (settings, root stack, config, and an event loop per RPC worker thread
that is never closed), so each config runs in its own interpreter: `python tests/mockstack.py MODULE CONFIG_JSON
OUT_JSON` imports the test module MODULE and writes what its `_run_program(config)` returns. The pytest process
itself never imports pulumi.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_under_mocks(program: Callable[[], None], mocks: Any, config: dict[str, str], project: str,
                    extra: Callable[[Any, Any, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run `program` under `mocks` with `config` (in a child interpreter); everything it registered and exported,
    and the error it raised, if any. A recording MockMonitor keeps each registration with what MockResourceArgs
    lacks (the parent, the provider map, the URN), plus what `extra(monitor, request, response)` adds."""
    import pulumi
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def __init__(self, mocks: Any) -> None:
            super().__init__(mocks)
            self.records: list[dict[str, Any]] = []

        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                self.records.append({
                    "urn": response.urn, "id": response.id, "type": request.type, "name": request.name,
                    "custom": request.custom, "parent": request.parent, "provider": request.provider,
                    "providers": dict(request.providers), "inputs": rpc.deserialize_properties(request.object),
                    **(extra(self, request, response) if extra else {}),
                })
            return response

    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_all_config(config)
    pulumi.runtime.set_mocks(mocks, project=project, stack="policy", preview=False, monitor=monitor)
    root = pulumi.runtime.get_root_resource()
    exports: dict[str, Any] = {}
    error = None

    @pulumi.runtime.test
    def deploy() -> pulumi.Output[Any]:
        program()
        return pulumi.Output.from_input(root.outputs).apply(exports.update)  # type: ignore[union-attr]

    try:
        deploy()
    except Exception as exc:  # the program refusing its config is a result too
        error = {"type": type(exc).__name__, "message": str(exc)}
    return {"config": config, "resources": monitor.records, "exports": exports, "error": error}


class Recorded:
    """One config's run, as the tests see it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.config: dict[str, str] = data["config"]
        self.resources: list[dict[str, Any]] = data["resources"]
        self.exports: dict[str, Any] = data["exports"]
        self.error: dict[str, str] | None = data["error"]
        self.by_urn = {r["urn"]: r for r in self.resources}

    @property
    def name(self) -> str:
        return self.config["lit:clusterName"]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str) -> dict[str, Any]:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r['name'] for r in found]}"
        return found[0]


R = TypeVar("R", bound=Recorded)


def record_all(module: str, configs: dict[str, dict[str, str]], tmp: Path, recorded: type[R], timeout: float,
               drop_env: tuple[str, ...] = ("PULUMI_CONFIG",)) -> dict[str, R]:
    """Every config's run of `module`'s `_run_program`, all at once in child interpreters, without the environment
    variables whose names start with one of `drop_env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    try:
        for key, config in configs.items():
            out = tmp / f"{key}.json"
            procs[key] = (subprocess.Popen([sys.executable, __file__, module, json.dumps(config), str(out)], cwd=tmp,
                                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
        runs: dict[str, R] = {}
        for key, (proc, out) in procs.items():
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
                pytest.fail(f"the program under mocks ({key}) did not end in {timeout:g} s\n{stdout}\n{stderr}")
            if proc.returncode != 0 or not out.exists():
                pytest.fail(f"the mock harness failed for {key} (rc {proc.returncode})\n{stdout}\n{stderr}")
            runs[key] = recorded(json.loads(out.read_text()))
        return runs
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # the test module is imported as the pytest process does: tests.<name>
    run_program = importlib.import_module(sys.argv[1])._run_program
    Path(sys.argv[3]).write_text(json.dumps(run_program(json.loads(sys.argv[2])), default=repr))
