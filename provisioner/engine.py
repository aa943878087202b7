"""Stack engines: what runs a cluster's Pulumi program. Cloud-neutral and pluggable, so a test bed can swap it.

The engine is chosen by `LIT_STACK_ENGINE` ("module:attribute", a class or factory taking the lit home),
else the Automation API engine. Each call names the program to run ("module:attribute") and its Pulumi project;
the defaults are the aws cluster's, `lit.stacks.cluster:program` in project "lit" (config keys "lit:clusterName",
"lit:roleArn", "lit:externalId", "lit:sshCidr", "lit:workPolicyArns", "aws:region"). The Kubernetes cluster's
program is `lit.stacks.kubernetes.cluster:program` in project "lit-kubernetes". A project per program: each has
its own stacks, so an aws cluster and a Kubernetes cluster of the same name never share a stack.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.errors import BadInput, InfrastructureError
from lit.runtime.home import lit_home

Events = Callable[[str], None]

PROGRAM = "lit.stacks.cluster:program"  # the aws cluster's program: the default, as before engines took one
PROJECT = "lit"


class StackEngine:
    """What runs a stack. Engines subclass this (the fake cloud's runs each resource against the emulator)."""

    def check(self) -> None:
        """Refuse, as bad input, before anything is made, an engine that cannot run (e.g. no pulumi CLI)."""
        return None

    def up(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
           project: str = PROJECT, secret_keys: Collection[str] = ()) -> dict[str, Any]:
        """Create or update the stack of `project` by running `program` ("module:attribute"); idempotent (an
        interrupted up can run again). Returns its outputs. The config values under `secret_keys` (e.g.
        "lit:kubeconfig") are secrets: never written or passed anywhere in clear (the stack's config and state,
        a command line)."""
        raise NotImplementedError

    def destroy(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
                project: str = PROJECT, secret_keys: Collection[str] = ()) -> None:
        """Remove every resource of the stack (retained ones stay), then the stack itself."""
        raise NotImplementedError

    def outputs(self, stack: str, program: str = PROGRAM, project: str = PROJECT) -> Optional[dict[str, Any]]:
        """The stack's outputs, or None if there is no such stack."""
        raise NotImplementedError


def load_program(spec: str) -> Callable[[], None]:
    """The Pulumi program named by "module:attribute"; a missing SDK (an extra not installed) is bad input."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"the stack program {spec} cannot be imported ({exc}); install the provider's extras, "
                       "e.g. pip install 'lit[aws]' or 'lit[kubernetes]'") from None
    program = getattr(module, attr, None)
    if not callable(program):
        raise BadInput(f"the stack program {spec} is not a function (expected module:attribute)")
    return program  # type: ignore[no-any-return]


def with_config(program: Callable[[], None], secret: dict[str, str]) -> Callable[[], None]:
    """The inline program, given `secret` config values in this process, never through the pulumi CLI.

    The Automation API hands config to the CLI as arguments (`pulumi config set-all --secret key=value`,
    pulumi/automation/_local_workspace.py set_all_config), and a process's arguments are readable by every local
    user (/proc/PID/cmdline): a kubeconfig's token would be on show while the command runs. An inline program runs
    in lit's own process, so the values are set in its config here instead; the program reads them with
    `require_secret`, which keeps them secret in the state (encrypted with lit's passphrase). `destroy` needs them
    not: it deletes with the provider configuration recorded in the state.
    """
    if not secret:
        return program

    def run() -> None:
        from pulumi.runtime import set_config

        for key, value in secret.items():
            set_config(key, value)
        program()

    return run


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
    passphrase lit keeps in the lit home (mode 0600). Every project's stacks live in the one backend (the file
    backend keeps them apart by project: .pulumi/stacks/<project>/<stack>.json).
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
            raise BadInput("the pulumi CLI is not installed; lit runs its cluster stacks through it (the Automation "
                           "API). Install it: curl -fsSL https://get.pulumi.com | sh (then open a new shell)")
        try:
            from pulumi import automation  # noqa: F401
        except ImportError:
            raise BadInput("the Pulumi SDK is missing: install the provider's extras, pip install 'lit[aws]' or "
                           "'lit[kubernetes]'") from None

    def _stack(self, stack: str, config: Optional[dict[str, str]] = None, program: str = PROGRAM,
               project: str = PROJECT, secret_keys: Collection[str] = ()) -> Any:
        self.check()
        from pulumi import automation as auto

        config = dict(config or {})
        secret = {key: config.pop(key) for key in secret_keys if key in config}
        workspace = auto.LocalWorkspaceOptions(env_vars=self._workspace_env())
        selected = auto.create_or_select_stack(stack_name=stack, project_name=project,
                                               program=with_config(load_program(program), secret), opts=workspace)
        if config:
            selected.set_all_config({key: auto.ConfigValue(value=value) for key, value in config.items()})
        return selected

    def up(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
           project: str = PROJECT, secret_keys: Collection[str] = ()) -> dict[str, Any]:
        selected = self._stack(stack, config, program, project, secret_keys)
        try:
            result = selected.up(on_output=lambda line: on_event(line.rstrip()))
        except Exception as exc:  # the Automation API raises CommandError with pulumi's own message
            raise InfrastructureError(f"pulumi up failed for stack {stack}: {exc}") from None
        return {key: value.value for key, value in result.outputs.items()}

    def destroy(self, stack: str, config: dict[str, str], on_event: Events, program: str = PROGRAM,
                project: str = PROJECT, secret_keys: Collection[str] = ()) -> None:
        selected = self._stack(stack, config, program, project, secret_keys)
        try:
            selected.destroy(on_output=lambda line: on_event(line.rstrip()))
            selected.workspace.remove_stack(stack)
        except Exception as exc:
            raise InfrastructureError(f"pulumi destroy failed for stack {stack}: {exc}") from None

    def outputs(self, stack: str, program: str = PROGRAM, project: str = PROJECT) -> Optional[dict[str, Any]]:
        try:
            selected = self._stack(stack, None, program, project)
            return {key: value.value for key, value in selected.outputs().items()}
        except BadInput:
            raise
        except Exception:
            return None
