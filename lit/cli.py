"""The `lit` command. The only place that prints and picks exit codes."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar

import click
from rich.console import Console
from rich.style import Style
from rich.text import Text

from lit.history import logs, runs
from lit.provisioner import registry
from lit.provisioner.base import Option
from lit.runtime.errors import BadInput, ExitCode, LitError
from lit.runtime.status import WorkStatus

_COLORS = ["cyan", "magenta", "yellow", "green", "blue", "bright_cyan", "bright_magenta", "bright_yellow",
           "bright_green", "bright_blue"]
_DIM = Style(dim=True)
F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class TerminalReporter:
    """Work output live, line by line, prefixed with the work's name. Colour is rich's decision: none when the
    stream is not a terminal or NO_COLOR is set (https://no-color.org), forced with FORCE_COLOR."""

    def __init__(self, out: Optional[Console] = None, err: Optional[Console] = None) -> None:
        self.out = out or Console(file=sys.stdout)
        self.err = err or Console(file=sys.stderr)
        self._styles: dict[str, Style] = {}
        self._prefixes: dict[tuple[int, str, int], str] = {}
        self._width = 0

    @staticmethod
    def _paint(console: Console, text: str, style: Style) -> str:
        if console.no_color or console.color_system is None:
            return text
        with console.capture() as captured:
            console.print(Text(text, style=style), end="", soft_wrap=True)
        return captured.get()

    def _prefix(self, console: Console, work: str) -> str:
        self._width = max(self._width, len(work))
        key = (id(console), work, self._width)
        if key not in self._prefixes:  # rendered once per work and width: output lines are many
            style = self._styles.setdefault(work, Style(color=_COLORS[len(self._styles) % len(_COLORS)]))
            self._prefixes[key] = self._paint(console, work.ljust(self._width), style) + " | "
        return self._prefixes[key]

    def log(self, work: str, stream: str, line: str) -> None:
        console = self.err if stream == "stderr" else self.out
        # Written to the stream itself, not through console.print: a work's output is the user's text, never
        # markup, wrapped or highlighted (and a busy work prints many lines).
        console.file.write(self._prefix(console, work) + line + "\n")
        console.file.flush()

    def progress(self, work: str, step: str) -> None:
        self.err.file.write(self._prefix(self.err, work) + self._paint(self.err, step, _DIM) + "\n")
        self.err.file.flush()

    def status(self, work: str, status: WorkStatus) -> None:
        if status.stage in ("failed", "stopped") and status.message:
            self.err.file.write(f"{self._prefix(self.err, work)}{status.stage}: {status.message}\n")
            self.err.file.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lit", prog_name="lit")
def main() -> None:
    """lit: a flow orchestrates works, on this machine or each work on its own machine."""


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BadInput(f"--env {pair!r}: expected KEY=VALUE with a valid variable name")
        env[key] = value
    return env


def _run_name(app_file: str, name: Optional[str]) -> str:
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise BadInput(f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)")
        return name
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(app_file).stem) or "app"
    return f"{stem}-{stamp}"


def _unique_dir(base: Path) -> Path:
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@main.command("run")
@click.argument("app_file", metavar="APP.py")
@click.option("--env", "env_pairs", multiple=True, metavar="K=V", help="Environment variable for the app.")
@click.option("--name", default=None, help="Run name (default: the file's stem and the UTC time).")
@click.option("--cloud", default=None, metavar="CLUSTER", help="Run each work on a machine of CLUSTER.")
@click.option("--keep-machines", is_flag=True,
              help="At the end, stop the cloud machines instead of terminating them (the next run reuses them).")
@click.option("--ui/--no-ui", "ui", default=None,
              help="Serve a live dashboard on 127.0.0.1 while the app runs (default: on when stderr is a terminal "
                   "and CI is not set).")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=None, metavar="N",
              help="The dashboard's port (default: a free one). Implies --ui.")
def run_command(app_file: str, env_pairs: tuple[str, ...], name: Optional[str], cloud: Optional[str],
                keep_machines: bool, ui: Optional[bool], ui_port: Optional[int]) -> None:
    """Run APP.py: the flow here, each work in its own process (or machine, with --cloud)."""
    started = time.monotonic()
    from lit.runtime.home import lit_home
    from lit.runtime.loader import UserCodeError, load_app
    from lit.runtime.orchestrator import Orchestrator
    from lit.runtime.records import Reporter

    try:
        env = _parse_env(env_pairs)
        run_name = _run_name(app_file, name)
        launcher = None
        if cloud is not None:
            from lit.provisioner import store

            store.load(cloud)  # an unknown cluster is bad input, before the app is even loaded
        os.environ.update(env)
        app = load_app(app_file)
        if cloud is not None:
            from lit.provisioner.launcher import ClusterLauncher

            launcher = ClusterLauncher(cloud, run_name, Path(app_file), keep_machines=keep_machines)
            launcher.check([(name, work.cloud_compute) for name, work in app.root.named_works()])
    except UserCodeError as exc:
        click.echo(exc.formatted.rstrip(), err=True)
        _fail(str(exc), exc.exit_code)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)

    run_dir = _unique_dir(lit_home() / "runs" / run_name)
    reporter: Reporter = TerminalReporter()
    dashboard, ui_reporter = None, None
    from lit.runtime.ui import Dashboard, ui_wanted

    if ui_wanted(ui, ui_port, dict(os.environ), sys.stderr.isatty()):
        facts = {"app": Path(app_file).name, "run_name": run_dir.name, "cluster": cloud or "local"}
        try:
            dashboard = Dashboard(ui_port or 0, facts)
        except OSError as exc:  # the dashboard is an aid: the run goes on without it
            click.echo(f"dashboard: not served, cannot listen on 127.0.0.1:{ui_port or 0}: {exc.strerror or exc}",
                       err=True)
        else:
            click.echo(f"dashboard: {dashboard.url}", err=True)
            reporter = ui_reporter = dashboard.reporter(reporter, cloud or "local")
    extra: dict[str, Any] = {}
    if launcher is not None:
        extra = {"launcher": launcher, "orphan_timeout": launcher.orphan_timeout}
    try:  # the dashboard closes however the run ends (its threads are daemons: it never holds the exit up)
        orchestrator = Orchestrator(app, Path(app_file), run_dir, reporter=reporter, env=env, **extra)
        if ui_reporter is not None:
            ui_reporter.watch(orchestrator)
        try:
            outcome = orchestrator.run()
        except LitError as exc:
            _fail(str(exc), exc.exit_code)
        elapsed = time.monotonic() - started
        if dashboard is not None:
            dashboard.finish(outcome, elapsed)  # open pages get the end while the summary prints
        if outcome.traceback:
            click.echo(outcome.traceback.rstrip(), err=True)
        if outcome.message:
            label = "done" if outcome.exit_code == 0 else "error"
            click.echo(f"{label}: {outcome.message}", err=True)
        _write_record(run_dir, app_file, outcome, elapsed)
        _print_summary(outcome, elapsed, run_dir)
        if launcher is not None:
            for line in launcher.leftovers():
                click.echo(f"still up: {line}", err=True)
    finally:
        if dashboard is not None:
            dashboard.close()
    sys.exit(outcome.exit_code)


def _write_record(run_dir: Path, app_file: str, outcome: Any, elapsed: float) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "version": 1,
        "app": str(Path(app_file).resolve()),
        "exit_code": outcome.exit_code,
        "message": outcome.message,
        "elapsed": round(elapsed, 3),
        "works": [asdict(w) for w in outcome.works],
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")


def _print_summary(outcome: Any, elapsed: float, run_dir: Path) -> None:
    if not outcome.works:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lit run: exit {outcome.exit_code} in {elapsed:.2f} s", title_justify="left")
    machines = any(work.instance_type for work in outcome.works)
    columns = ["work", "compute", "status", "calls", "wall time"]
    if machines:
        columns += ["instance", "machine time", "cost"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("calls", "wall time", "machine time", "cost")
                         else "left")
    styles = {"succeeded": "green", "failed": "red", "stopped": "yellow"}
    for work in outcome.works:
        stage = f"[{styles.get(work.stage, 'white')}]{work.stage}[/]"
        row = [work.name, work.compute, stage, str(work.calls), f"{work.wall_time:.2f} s"]
        if machines:
            row += [work.instance_type or "-", f"{work.machine_seconds:.1f} s" if work.instance_type else "-",
                    f"${work.cost:.4f}" if work.instance_type else "-"]
        table.add_row(*row)
    console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)
    console.print(table)
    console.print(f"logs: {run_dir / 'logs'}", style="dim")


def _progress(step: str) -> None:
    click.echo(f"  {step}", err=True)


def _provider_options(kind: str) -> Callable[[F], F]:
    """Add every provider's options for `kind` ("create", "update", "delete", "policy") to a command. A flag two
    providers share is one option; its help names each provider's meaning."""

    def decorate(command: F) -> F:
        merged: dict[str, tuple[Option, list[str]]] = {}
        for info in registry.infos().values():
            for option in info.options(kind):
                first, helps = merged.setdefault(option.flag, (option, []))
                if (first.multiple, first.is_flag) != (option.multiple, option.is_flag):
                    raise TypeError(f"providers declare {option.flag} differently")  # a bug in a provider
                helps.append(f"{info.name}: {option.help}")
        for flag, (option, helps) in reversed(list(merged.items())):
            command = click.option(flag, option.dest, multiple=option.multiple, is_flag=option.is_flag,
                                   metavar=option.metavar, help=" ".join(helps))(command)
        return command

    return decorate


def _given(kind: str, provider: str, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave that `provider` declared; one the user gave for another provider is bad input.
    (A provider that declares none for `kind` gets them all, to refuse the command in its own words.)"""
    declared = {option.dest: option for option in registry.info(provider).options(kind)}
    given = {dest: value for dest, value in values.items() if value not in (None, (), False)}
    if not declared:
        return given
    for dest in given:
        if dest not in declared:
            owners = [info.name for info in registry.infos().values()
                      if any(o.dest == dest for o in info.options(kind))]
            flag = "--" + dest.replace("_", "-")
            raise BadInput(f"{flag} is not an option of provider {provider} (it is one of: {', '.join(owners)})")
    return given


@main.group("create")
def create_group() -> None:
    """Create a cluster."""


@create_group.command("cluster")
@click.argument("name")
@click.option("--provider", required=True, type=click.Choice(list(registry.infos())),
              help="Where the machines come from: " + "; ".join(f"{i.name}: {i.summary}"
                                                                 for i in registry.infos().values()) + ".")
@_provider_options("create")
@click.option("--orphan-timeout", default=120.0, type=float, show_default=True,
              help="Seconds an agent waits for lit before ending its work.")
def create_cluster(name: str, provider: str, orphan_timeout: float, **options: Any) -> None:
    """Create cluster NAME."""
    try:
        given = _given("create", provider, options)
        created = registry.get_provider(provider).create(name, given, orphan_timeout, _progress)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    for line in created.details:
        click.echo(line, err=True)
    click.echo(f"created cluster {created.cluster.name} {created.where}. Run: lit run app.py --cloud {name}")


@main.group("update")
def update_group() -> None:
    """Change a cluster."""


@update_group.command("cluster")
@click.argument("name")
@_provider_options("update")
def update_cluster(name: str, **options: Any) -> None:
    """Update cluster NAME (e.g. SSH from your current address, after it changed)."""
    from lit.provisioner import store

    try:
        cluster = store.load(name)
        given = _given("update", cluster.provider, options)
        changed = registry.provider_for(cluster).update(cluster, given, _progress)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"cluster {cluster.name}: {changed}")


@main.group("cluster")
def cluster_group() -> None:
    """About clusters."""


_POLICY_PROVIDERS = [info.name for info in registry.infos().values() if info.policy_options]


@cluster_group.command("policy")
@click.option("--provider", type=click.Choice(_POLICY_PROVIDERS), default=None,
              help="Whose permissions to print (default: the one whose options you gave).")
@_provider_options("policy")
def cluster_policy(provider: Optional[str], **options: Any) -> None:
    """Print the permissions an administrator grants for lit (an IAM role, a Kubernetes Role, ...)."""
    try:
        given = {dest: value for dest, value in options.items() if value not in (None, (), False)}
        if provider is None:
            fitting = [name for name in _POLICY_PROVIDERS
                       if set(given) <= {o.dest for o in registry.info(name).options("policy")}]
            if len(fitting) != 1 or not given:
                raise BadInput(f"which provider's permissions? pass --provider ({', '.join(_POLICY_PROVIDERS)})")
            provider = fitting[0]
        documents = registry.get_provider(provider).policy(_given("policy", provider, options))
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    for title, document in documents:
        click.echo(f"# {title}:")
        click.echo(document if isinstance(document, str) else json.dumps(document, indent=2))


@main.group("list")
def list_group() -> None:
    """List things lit knows."""


@list_group.command("clusters")
def list_clusters() -> None:
    """Every cluster with its provider, machines and state."""
    from rich.table import Table

    from lit.provisioner import store

    table = Table(title="clusters", title_justify="left")
    for column in ("name", "provider", "where", "machines", "state", "orphan timeout", "created"):
        table.add_column(column)
    for name in store.list_names():
        try:
            cluster = store.load(name)
            listing = registry.provider_for(cluster).describe(cluster)
        except LitError as exc:
            table.add_row(name, "?", "?", "?", f"damaged: {exc}", "", "")
            continue
        table.add_row(cluster.name, cluster.provider, listing.where, listing.machines, cluster.state,
                      f"{cluster.orphan_timeout:g} s", cluster.created)
    Console(highlight=False, width=160).print(table)


@main.group("delete")
def delete_group() -> None:
    """Delete a cluster."""


@delete_group.command("cluster")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@_provider_options("delete")
def delete_cluster(name: str, yes: bool, **options: Any) -> None:
    """Delete cluster NAME (and stop any lit agent still running on its machines)."""
    from lit.provisioner import store

    try:
        cluster = store.load(name)
        given = _given("delete", cluster.provider, options)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    if not yes:
        if not sys.stdin.isatty():
            _fail(f"deleting cluster {name} needs confirmation: pass --yes", ExitCode.BAD_INPUT)
        if not click.confirm(f"delete cluster {name} ({len(cluster.machines)} machines)?"):
            _fail("not deleted", ExitCode.FAILED)
    try:
        registry.provider_for(cluster).delete(cluster, given, _progress)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"deleted cluster {name}")


main.add_command(runs)
main.add_command(logs)


if __name__ == "__main__":
    main()
