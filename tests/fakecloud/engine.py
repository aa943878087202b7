"""MotoEngine: lit's StackEngine against the fake cloud (LIT_STACK_ENGINE=tests.fakecloud.engine:MotoEngine).

`up` runs the same program as the real engine (lit.stacks.cluster.program) under Pulumi's mocks, in a fresh
process (python -m tests.fakecloud.engine_run), and every resource the program declares is made for real in moto
through the provider's assumed role. What was made is recorded, in creation order, in
`<lit home>/fakecloud-stacks/<stack>.json`: `up` again reuses it (an interrupted up finishes the job, no
duplicates), `destroy` deletes it in reverse order (leaving what the program marks retain_on_delete, the bucket)
then removes the file, `outputs` reads the recorded outputs.

moto is reached at AWS_ENDPOINT_URL (from the environment, or the `env` given to the constructor), which must be a
private or loopback address.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable, Optional

from ..stackengine import ChildEngine, run_child
from .aws import FakeCloudError, endpoint_from_env
from .engine_run import PROGRAM
from .resources import HANDLERS, PROVIDER_TYPE, Context, provider_context
from .stackfile import StackFile

Events = Callable[[str], None]


class MotoEngine(ChildEngine):
    """A StackEngine whose cloud is moto. `env` overrides os.environ (AWS_ENDPOINT_URL, credentials)."""

    error = FakeCloudError

    # ----- StackEngine (lit.provisioner.engine; not subclassed: this module works without lit installed)
    # `project` and `secret_keys` are accepted and ignored: one program per fake cloud, and its state file is
    # the test's own.
    def check(self) -> None:
        return None  # moto is up whenever the fake cloud is

    def up(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
           project: str = "lit", secret_keys: Collection[str] = ()) -> dict[str, Any]:
        bad_input, infrastructure = self._lit_errors()
        env = self._environ()
        try:
            endpoint_from_env(env)
            StackFile(self.home, stack)
        except FakeCloudError as exc:
            raise bad_input(str(exc)) from None
        argv = [sys.executable, "-m", "tests.fakecloud.engine_run", "up", "--home", str(self.home), "--stack", stack,
                "--program", program]
        run_child(argv, config, on_event, env, self.home, self.timeout, f"fake cloud: up of stack {stack}",
                  infrastructure)
        outputs = self.outputs(stack)
        if outputs is None:
            raise infrastructure(f"fake cloud: up of stack {stack} recorded no outputs")
        return outputs

    def destroy(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
                project: str = "lit", secret_keys: Collection[str] = ()) -> None:
        """Delete, newest first, what up made (but retained resources), then the stack's record."""
        _, infrastructure = self._lit_errors()
        file = StackFile(self.home, stack)
        env = self._environ()
        try:
            with file.lock():
                data = file.load()
                if data is None:
                    return
                endpoint = endpoint_from_env(env)
                key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
                credentials = (key, secret) if key and secret else None  # the operator's (self.env's)
                region = config.get("aws:region") or (data.get("config") or {}).get("aws:region") or ""
                records = {r["urn"]: r for r in data["resources"]}
                contexts: dict[str, Context] = {}

                def context(rec: dict[str, Any]) -> Context:
                    urn = rec.get("provider") or ""
                    if urn not in contexts:
                        provider = records.get(urn)
                        inputs = (provider or {}).get("state") or {}
                        contexts[urn] = provider_context(inputs, endpoint, region, credentials)
                    return contexts[urn]

                for rec in reversed(list(data["resources"])):
                    if rec["type"] != PROVIDER_TYPE and rec.get("id"):
                        if rec.get("retain"):
                            on_event(f"~ {rec['type']} {rec['name']} {rec['id']} (retained)")
                        else:
                            HANDLERS[rec["type"]][1](context(rec), rec)
                            on_event(f"- {rec['type']} {rec['name']} {rec['id']}")
                    data["resources"].remove(rec)
                    file.save(data)
                file.remove()
                (file.dir / f".{stack}.lock").unlink(missing_ok=True)
        except FakeCloudError as exc:
            raise infrastructure(f"fake cloud: destroy of stack {stack} failed: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("botocore"):
                raise infrastructure(f"fake cloud: destroy of stack {stack} failed: {exc}") from None
            raise

    def outputs(self, stack: str, program: str = PROGRAM, project: str = "lit") -> Optional[dict[str, Any]]:
        data = StackFile(self.home, stack).load()
        if data is None or data.get("outputs") is None:
            return None
        return dict(data["outputs"])

    # ----- for tests
    def state(self, stack: str) -> Optional[dict[str, Any]]:
        """The stack's record (see stackfile.py), or None."""
        return StackFile(self.home, stack).load()

    def state_path(self, stack: str) -> Path:
        return StackFile(self.home, stack).path

