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
from typing import Any, NoReturn, Optional

import click

from lit.runtime.errors import BadInput, LitError
from lit.runtime.status import WorkStatus

_COLORS = ["36", "35", "33", "32", "34", "96", "95", "93", "92", "94"]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class TerminalReporter:
    """Work output live, line by line, prefixed with the work's name."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self._colors: dict[str, str] = {}
        self._width = 0

    def _prefix(self, work: str) -> str:
        self._width = max(self._width, len(work))
        label = work.ljust(self._width)
        if not self.color:
            return f"{label} | "
        code = self._colors.setdefault(work, _COLORS[len(self._colors) % len(_COLORS)])
        return f"\x1b[{code}m{label}\x1b[0m | "

    def log(self, work: str, stream: str, line: str) -> None:
        out = sys.stderr if stream == "stderr" else sys.stdout
        out.write(self._prefix(work) + line + "\n")
        out.flush()

    def progress(self, work: str, step: str) -> None:
        text = f"\x1b[2m{step}\x1b[0m" if self.color else step
        sys.stderr.write(f"{self._prefix(work)}{text}\n")
        sys.stderr.flush()

    def status(self, work: str, status: WorkStatus) -> None:
        if status.stage in ("failed", "stopped") and status.message:
            sys.stderr.write(f"{self._prefix(work)}{status.stage}: {status.message}\n")
            sys.stderr.flush()


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
def run_command(app_file: str, env_pairs: tuple[str, ...], name: Optional[str], cloud: Optional[str],
                keep_machines: bool) -> None:
    """Run APP.py: the flow here, each work in its own process (or machine, with --cloud)."""
    started = time.monotonic()
    from lit.runtime.home import lit_home
    from lit.runtime.loader import UserCodeError, load_app
    from lit.runtime.orchestrator import Orchestrator

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
    reporter = TerminalReporter(color=sys.stdout.isatty())
    extra: dict[str, Any] = {}
    if launcher is not None:
        extra = {"launcher": launcher, "orphan_timeout": launcher.orphan_timeout}
    orchestrator = Orchestrator(app, Path(app_file), run_dir, reporter=reporter, env=env, **extra)
    try:
        outcome = orchestrator.run()
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    elapsed = time.monotonic() - started
    if outcome.traceback:
        click.echo(outcome.traceback.rstrip(), err=True)
    if outcome.message:
        label = "done" if outcome.exit_code == 0 else "error"
        click.echo(f"{label}: {outcome.message}", err=True)
    _write_record(run_dir, app_file, outcome, elapsed)
    _print_summary(outcome, elapsed, run_dir)
    if launcher is not None:
        still_up = launcher.still_up()
        if still_up:
            ids = " ".join(still_up)
            click.echo(f"still up: {ids}. Remove them with `lit delete cluster {cloud} --yes`, or "
                       f"`aws ec2 terminate-instances --instance-ids {ids}`", err=True)
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


@main.group("create")
def create_group() -> None:
    """Create a cluster."""


@create_group.command("cluster")
@click.argument("name")
@click.option("--provider", required=True, type=click.Choice(["ssh", "aws"]), help="Where the machines come from.")
@click.option("--hosts", help="ssh: USER@ADDR[:PORT],... the hosts of the cluster.")
@click.option("--key", "key_path", default=None, help="ssh: private key file (default ~/.ssh/id_ed25519).")
@click.option("--gpus", multiple=True, metavar="ADDR=N", help="ssh: GPUs the probe cannot see.")
@click.option("--known-hosts", default=None, help="ssh: pin host keys from this file instead of trusting on first use.")
@click.option("--role-arn", default=None, help="aws: the IAM role in your account that lit assumes.")
@click.option("--external-id", default=None, help="aws: the external ID the role's trust policy requires.")
@click.option("--region", default=None, help="aws: the region (default $AWS_REGION or us-east-1).")
@click.option("--ssh-cidr", default=None, help="aws: who may SSH to work machines (default: your address/32).")
@click.option("--work-policy-arn", "work_policy_arns", multiple=True, metavar="ARN",
              help="aws: an IAM policy for the work machines' role (e.g. to read your datasets).")
@click.option("--orphan-timeout", default=120.0, type=float, show_default=True,
              help="Seconds an agent waits for lit before ending its work.")
def create_cluster(name: str, provider: str, hosts: Optional[str], key_path: Optional[str], gpus: tuple[str, ...],
                   known_hosts: Optional[str], role_arn: Optional[str], external_id: Optional[str],
                   region: Optional[str], ssh_cidr: Optional[str], work_policy_arns: tuple[str, ...],
                   orphan_timeout: float) -> None:
    """Create cluster NAME."""
    def progress(step: str) -> None:
        click.echo(f"  {step}", err=True)

    try:
        if provider == "aws":
            from lit.provisioner.aws import cluster as aws_cluster

            if not role_arn:
                raise BadInput("--role-arn is required for --provider aws (see `lit cluster policy`)")
            created = aws_cluster.create(name, role_arn, external_id, region, ssh_cidr, orphan_timeout,
                                         work_policy_arns, progress)
            click.echo(f"created cluster {created.name} in {created.settings['region']}. "
                       f"Run: lit run app.py --cloud {name}")
            return
        from lit.provisioner.ssh import SSHProvider

        if not hosts:
            raise BadInput("--hosts is required for --provider ssh (USER@ADDR[:PORT],...)")
        cluster, fingerprints = SSHProvider().create(name, hosts, key_path, gpus, orphan_timeout, known_hosts,
                                                     progress=progress)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    how = "pinned from " + known_hosts if known_hosts else "trusted on first use; check them"
    click.echo(f"host keys ({how}):", err=True)
    for line in fingerprints:
        click.echo(f"  {line}", err=True)
    click.echo(f"created cluster {cluster.name} ({len(cluster.machines)} hosts). Run: lit run app.py --cloud {name}")


@main.group("update")
def update_group() -> None:
    """Change a cluster."""


@update_group.command("cluster")
@click.argument("name")
@click.option("--ssh-cidr", default=None, help="aws: who may SSH to work machines (default: your address/32 now).")
def update_cluster(name: str, ssh_cidr: Optional[str]) -> None:
    """Update cluster NAME (aws: SSH from your current address, after it changed)."""
    from lit.provisioner.aws import cluster as aws_cluster

    try:
        updated = aws_cluster.update(name, ssh_cidr, lambda step: click.echo(f"  {step}", err=True))
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"cluster {updated.name}: SSH to its machines from {updated.settings['ssh_cidr']}")


@main.group("cluster")
def cluster_group() -> None:
    """About clusters."""


@cluster_group.command("policy")
@click.option("--external-id", default=None, help="Require this external ID in the trust policy.")
@click.option("--account", default=None, help="The AWS account lit runs from (default: the one you are logged in to).")
@click.option("--role-arn", default=None, help="The role's ARN, if known: its partition (aws, aws-cn, aws-us-gov) "
              "goes into the policies' ARNs (default: your login's partition, else aws).")
def cluster_policy(external_id: Optional[str], account: Optional[str], role_arn: Optional[str]) -> None:
    """Print the IAM permissions policy and trust policy for the role `lit create cluster --provider aws` assumes."""
    from lit.provisioner.aws.cluster import policies
    from lit.provisioner.aws.session import ROLE_ARN

    partition = None
    if role_arn is not None:
        match = ROLE_ARN.match(role_arn)
        if not match:
            _fail(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                  BadInput.exit_code)
        partition = match["partition"]
    if account is None:
        try:
            from lit.provisioner.aws.session import boto3_module

            identity = boto3_module().client("sts").get_caller_identity()
            account = identity["Account"]
            partition = partition or str(identity["Arn"]).split(":")[1]
        except Exception:
            account = None  # not logged in: print the placeholder
    permissions, trust = policies(external_id, account, partition or "aws")
    click.echo("# Permissions policy (attach to the role):")
    click.echo(json.dumps(permissions, indent=2))
    click.echo("# Trust policy (the role's trust relationship):")
    click.echo(json.dumps(trust, indent=2))


@main.group("list")
def list_group() -> None:
    """List things lit knows."""


@list_group.command("clusters")
def list_clusters() -> None:
    """Every cluster with its provider, machines and state."""
    from rich.console import Console
    from rich.table import Table

    from lit.provisioner import store

    table = Table(title="clusters", title_justify="left")
    for column in ("name", "provider", "where", "machines", "state", "orphan timeout", "created"):
        table.add_column(column)
    for name in store.list_names():
        try:
            cluster = store.load(name)
        except LitError as exc:
            table.add_row(name, "?", "?", "?", f"damaged: {exc}", "", "")
            continue
        if cluster.provider == "aws":
            where = cluster.settings.get("region", "?")
            try:
                from lit.provisioner.aws.cluster import running_instances

                machines = f"{len(running_instances(cluster))} instances"
            except LitError as exc:
                machines = f"? ({exc})"
        else:
            gpus = sum(m.gpus for m in cluster.machines)
            where = ", ".join(m.address for m in cluster.machines)
            machines = f"{len(cluster.machines)} hosts, {gpus} GPUs"
        table.add_row(cluster.name, cluster.provider, where, machines, cluster.state,
                      f"{cluster.orphan_timeout:g} s", cluster.created)
    Console(highlight=False, width=160).print(table)


@main.group("delete")
def delete_group() -> None:
    """Delete a cluster."""


@delete_group.command("cluster")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--delete-data", is_flag=True, help="aws: also delete the cluster's bucket when it holds data.")
def delete_cluster(name: str, yes: bool, delete_data: bool) -> None:
    """Delete cluster NAME (and stop any lit agent still running on its machines)."""
    from lit.provisioner import store
    from lit.provisioner.base import get_provider

    try:
        cluster = store.load(name)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    if not yes:
        if not sys.stdin.isatty():
            _fail(f"deleting cluster {name} needs confirmation: pass --yes", 2)
        if not click.confirm(f"delete cluster {name} ({len(cluster.machines)} machines)?"):
            _fail("not deleted", 1)
    try:
        if cluster.provider == "aws":
            from lit.provisioner.aws import cluster as aws_cluster

            aws_cluster.delete(cluster, delete_data, progress=lambda step: click.echo(f"  {step}", err=True))
        else:
            get_provider(cluster.provider).delete(cluster, progress=lambda step: click.echo(f"  {step}", err=True))
            store.remove(name)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(f"deleted cluster {name}")


if __name__ == "__main__":
    main()
