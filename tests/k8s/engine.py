"""KubeEngine: lit's StackEngine against a real Kubernetes API server (LIT_STACK_ENGINE=tests.k8s.engine:KubeEngine).

`up` runs the same program the Automation API engine would (e.g. lit.stacks.kubernetes.cluster:program) under
Pulumi's mocks, in a fresh process (python -m tests.k8s.engine_run), and every Kubernetes object it declares is
applied for real through the API server its provider names (kubeconfig and context from the stack's config).
What was made is recorded in `<lit home>/k8s-stacks/<project>/<stack>.json`, without secrets: `up` again applies
the same objects (idempotent) and deletes what the program dropped, `destroy` deletes what was recorded (newest
first, waiting until each is gone) and removes the record, `outputs` reads the recorded outputs. The config, secrets
included, reaches the child on stdin, never on its command line.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable, Optional

from ..stackengine import ChildEngine, run_child
from .engine_run import EngineError, StackFile

PROGRAM = "lit.stacks.cluster:program"  # the StackEngine defaults (lit.provisioner.engine)
PROJECT = "lit"
Events = Callable[[str], None]


class KubeEngine(ChildEngine):
    """A StackEngine whose cloud is a Kubernetes API server. `env` overrides os.environ for the child."""

    error = EngineError

    # ----- StackEngine (lit.provisioner.engine; not subclassed: this module works without lit installed)
    def check(self) -> None:
        bad_input, _ = self._lit_errors()
        try:
            import kubernetes  # noqa: F401
            import pulumi  # noqa: F401
        except ImportError as exc:
            raise bad_input(f"the Kubernetes test engine needs the kubernetes extras ({exc}): "
                            "pip install 'lit[kubernetes]'") from None

    def _run(self, command: str, stack: str, config: dict[str, str], on_event: Events, program: str,
             project: str, secret_keys: Collection[str]) -> None:
        bad_input, infrastructure = self._lit_errors()
        try:
            StackFile(self.home, project, stack)
        except EngineError as exc:
            raise bad_input(str(exc)) from None
        argv = [sys.executable, "-m", "tests.k8s.engine_run", command, "--home", str(self.home), "--stack", stack,
                "--program", program, "--project", project]
        for key in secret_keys:
            argv += ["--secret-key", key]
        self.home.mkdir(parents=True, exist_ok=True)
        run_child(argv, config, on_event, self._environ(), self.home, self.timeout,
                  f"kubernetes test engine: {command} of stack {stack}", infrastructure)

    def up(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
           project: str = PROJECT, secret_keys: Collection[str] = ()) -> dict[str, Any]:
        _, infrastructure = self._lit_errors()
        self._run("up", stack, config, on_event, program, project, secret_keys)
        outputs = self.outputs(stack, program, project)
        if outputs is None:
            raise infrastructure(f"kubernetes test engine: up of stack {stack} recorded no outputs")
        return outputs

    def destroy(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
                project: str = PROJECT, secret_keys: Collection[str] = ()) -> None:
        if StackFile(self.home, project, stack).load() is None:
            return
        self._run("destroy", stack, config, on_event, program, project, secret_keys)

    def outputs(self, stack: str, program: str = PROGRAM, project: str = PROJECT) -> Optional[dict[str, Any]]:
        data = StackFile(self.home, project, stack).load()
        if data is None or data.get("outputs") is None:
            return None
        return dict(data["outputs"])

    # ----- for tests
    def state(self, stack: str, project: str = PROJECT) -> Optional[dict[str, Any]]:
        return StackFile(self.home, project, stack).load()

    def state_path(self, stack: str, project: str = PROJECT) -> Path:
        return StackFile(self.home, project, stack).path
