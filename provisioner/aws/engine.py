"""Stack engines: what runs the cluster's Pulumi program. Pluggable, so a fake cloud can swap it.

The engine is chosen by `LIT_STACK_ENGINE` ("module:attribute", a class or factory taking the lit home),
else the Automation API engine. Engines run `lit.stacks.cluster.program` with a config of Pulumi keys
("lit:clusterName", "lit:roleArn", "lit:externalId", "lit:sshCidr", "lit:workPolicyArns", "aws:region").
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.errors import BadInput, InfrastructureError
from lit.runtime.home import lit_home

Events = Callable[[str], None]


class StackEngine:
    """What runs a stack. Engines subclass this (the fake cloud's runs each resource against the emulator)."""

    def check(self) -> None:
        """Refuse, as bad input, before anything is made, an engine that cannot run (e.g. no pulumi CLI)."""
        return None

    def up(self, stack: str, config: dict[str, str], on_event: Events) -> dict[str, Any]:
        """Create or update the stack (idempotent: an interrupted up can run again). Returns its outputs."""
        raise NotImplementedError

    def destroy(self, stack: str, config: dict[str, str], on_event: Events) -> None:
        """Remove every resource of the stack (retained ones stay), then the stack itself."""
        raise NotImplementedError

    def outputs(self, stack: str) -> Optional[dict[str, Any]]:
        """The stack's outputs, or None if there is no such stack."""
        raise NotImplementedError


def load_engine() -> StackEngine:
    spec = os.environ.get("LIT_STACK_ENGINE", "")
    if not spec:
        return AutomationEngine(lit_home())
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"LIT_STACK_ENGINE={spec!r} cannot be loaded ({exc}); expected module:attribute") from None
    engine: StackEngine = factory(lit_home())
    return engine


class AutomationEngine(StackEngine):
    """Pulumi's Automation API with a local file backend under the lit home (no Pulumi Cloud account).

    Needs the pulumi CLI on PATH (the Automation API drives it). Secrets in the state are encrypted with a
    passphrase lit keeps in the lit home (mode 0600).
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.backend = home / "pulumi"

    def _workspace_env(self) -> dict[str, str]:
        self.backend.mkdir(parents=True, exist_ok=True, mode=0o700)
        passphrase_file = self.backend / "passphrase"
        if not passphrase_file.exists():
            fd = os.open(passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        # The CLI reads PULUMI_CONFIG_PASSPHRASE before PULUMI_CONFIG_PASSPHRASE_FILE (pulumi/pulumi
        # pkg/secrets/passphrase/manager.go), so a passphrase in the user's own environment would win over
        # lit's file, and an update or destroy from another shell would fail to decrypt. lit's stacks always use
        # lit's own secret: both variables are set, overriding the user's (LocalWorkspace's env_vars are laid
        # over os.environ for each CLI call).
        return {"PULUMI_BACKEND_URL": f"file://{self.backend}",
                "PULUMI_CONFIG_PASSPHRASE": passphrase_file.read_text().strip(),
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file),
                "PULUMI_SKIP_UPDATE_CHECK": "true"}

    def check(self) -> None:
        """Before anything is made: the pulumi CLI and the SDK are here."""
        if shutil.which("pulumi") is None:
            raise BadInput("the pulumi CLI is not installed; lit's aws provider drives it through the Automation "
                           "API. Install it: curl -fsSL https://get.pulumi.com | sh (then open a new shell)")
        try:
            from pulumi import automation  # noqa: F401
        except ImportError:
            raise BadInput("the aws provider needs its extras: pip install 'lit[aws]'") from None

    def _stack(self, stack: str, config: Optional[dict[str, str]] = None) -> Any:
        self.check()
        from pulumi import automation as auto

        from lit.stacks.cluster import program

        workspace = auto.LocalWorkspaceOptions(env_vars=self._workspace_env())
        selected = auto.create_or_select_stack(stack_name=stack, project_name="lit", program=program,
                                               opts=workspace)
        if config is not None:
            selected.set_all_config({key: auto.ConfigValue(value=value) for key, value in config.items()})
        return selected

    def up(self, stack: str, config: dict[str, str], on_event: Events) -> dict[str, Any]:
        selected = self._stack(stack, config)
        try:
            result = selected.up(on_output=lambda line: on_event(line.rstrip()))
        except Exception as exc:  # the Automation API raises CommandError with pulumi's own message
            raise InfrastructureError(f"pulumi up failed for stack {stack}: {exc}") from None
        return {key: value.value for key, value in result.outputs.items()}

    def destroy(self, stack: str, config: dict[str, str], on_event: Events) -> None:
        selected = self._stack(stack, config)
        try:
            selected.destroy(on_output=lambda line: on_event(line.rstrip()))
            selected.workspace.remove_stack(stack)
        except Exception as exc:
            raise InfrastructureError(f"pulumi destroy failed for stack {stack}: {exc}") from None

    def outputs(self, stack: str) -> Optional[dict[str, Any]]:
        try:
            selected = self._stack(stack)
            return {key: value.value for key, value in selected.outputs().items()}
        except BadInput:
            raise
        except Exception:
            return None
