"""`lit runs` and `lit logs`: the runs under the lit home and their works' output (lit.runtime.history reads them)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn, Optional, Union

import click
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from lit.runtime.errors import BadInput, ExitCode, LitError
from lit.runtime.history import RUNNING, LogTail, RunInfo, find_run, list_runs, read_run, work_logs

# The same palette, in the same order, as `lit run`'s prefixes (lit.cli.TerminalReporter).
_COLORS = ["cyan", "magenta", "yellow", "green", "blue", "bright_cyan", "bright_magenta", "bright_yellow",
           "bright_green", "bright_blue"]
_STATUS_STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "interrupted": "yellow",
                  "terminated": "yellow", "ended-without-record": "yellow", "damaged": "red"}
_LABELS = {"ended-without-record": "ended without a record"}
FOLLOW_POLL_SECONDS = 0.2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _started(epoch: Optional[float]) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch is not None else "-"


def _row(run: RunInfo) -> list[Union[str, Text]]:
    status = _LABELS.get(run.status, run.status.replace("-", " "))
    if run.message and run.status in ("damaged", "ended-without-record"):
        status += f": {run.message}"
    style = _STATUS_STYLES.get(run.status, "white")
    return [
        run.name,
        Path(run.app).name if run.app else "-",
        run.cluster or ("local" if run.cost is None else "-"),
        Text(status, style=style),  # a Text, not markup: a damaged record's message may hold brackets
        "-" if run.exit_code is None else str(run.exit_code),
        "-" if run.cost is None else f"${run.cost:.4f}",
        _started(run.started),
        _duration(run.duration),
    ]


@click.command("runs")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of runs, for scripts.")
def runs(as_json: bool) -> None:
    """Past and running runs, newest first."""
    found = list_runs()
    if as_json:
        click.echo(json.dumps([run.to_json() for run in found], indent=2))
        return
    if not found:
        click.echo("no runs yet: `lit run app.py` starts one", err=True)
        return
    table = Table(title="runs", title_justify="left")
    for column in ("run", "app", "cluster", "status", "exit", "cost", "started", "duration"):
        table.add_column(column, justify="right" if column in ("exit", "cost", "duration") else "left")
    for run in found:
        table.add_row(*_row(run))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


class _Printer:
    """Writes log lines as `lit run` does: "work | line", the name padded to the widest seen and coloured when the
    output is a terminal (rich decides, as for `lit run`: NO_COLOR and FORCE_COLOR count)."""

    def __init__(self, prefixed: bool, works: list[str]) -> None:
        self.console = Console(file=sys.stdout)
        self.prefixed = prefixed
        self.width = max((len(w) for w in works), default=0)
        self.styles: dict[str, Style] = {}
        self.prefixes: dict[tuple[str, int], str] = {}

    def _prefix(self, work: str) -> str:
        self.width = max(self.width, len(work))
        key = (work, self.width)
        if key not in self.prefixes:
            style = self.styles.setdefault(work, Style(color=_COLORS[len(self.styles) % len(_COLORS)]))
            text = work.ljust(self.width)
            if not (self.console.no_color or self.console.color_system is None):
                with self.console.capture() as captured:
                    self.console.print(Text(text, style=style), end="", soft_wrap=True)
                text = captured.get()
            self.prefixes[key] = text + " | "
        return self.prefixes[key]

    def lines(self, work: str, lines: list[str]) -> None:
        if not lines:
            return
        prefix = self._prefix(work) if self.prefixed else ""
        # Written to the stream itself: a work's output is the user's text, never markup.
        self.console.file.write("".join(f"{prefix}{line}\n" for line in lines))
        self.console.file.flush()


def _pick(run_dir: Path, work: Optional[str]) -> dict[str, Path]:
    info = read_run(run_dir)
    logs = work_logs(run_dir, info.works)
    if work is None:
        return logs
    short = work[len("root."):] if work.startswith("root.") else work
    if short not in logs:
        known = ", ".join(logs) or "none yet"
        raise BadInput(f"run {run_dir.name} has no log of a work named {work!r} (its works' logs: {known})")
    return {short: logs[short]}


@click.command("logs")
@click.argument("run")
@click.argument("work", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
def logs(run: str, work: Optional[str], follow: bool) -> None:
    """Print RUN's logs: every work's, each line after its work's name, or only WORK's lines.

    RUN is a run's name (see `lit runs`) or the start of one. The lines carry no time, so without --follow they
    come work by work; with it, new lines come as the works print them.
    """
    try:
        run_dir = find_run(run)
        files = _pick(run_dir, work)
    except LitError as exc:
        _fail(str(exc), exc.exit_code)
    printer = _Printer(prefixed=work is None, works=list(files))
    tails = {name: LogTail(path) for name, path in files.items()}
    try:
        if not follow:
            for name, tail in tails.items():
                printer.lines(name, tail.read(final=True))
            return
        _follow(run_dir, work, tails, printer)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`lit logs RUN | head`): nothing more to say, and nothing to say it to.
        sys.stderr.close()
        sys.exit(0)


def _follow(run_dir: Path, work: Optional[str], tails: dict[str, LogTail], printer: _Printer) -> None:
    """Print what is there, then new lines as they come, until the run is no longer running."""
    while True:
        # Read the status before the logs: when it says the run ended, the logs were complete before the read
        # below (lit writes its end record after closing them), so the last lines are never missed.
        info = read_run(run_dir)
        if work is None:
            for name, path in work_logs(run_dir, info.works).items():
                tails.setdefault(name, LogTail(path))  # a work started since (or created by the flow as it ran)
        ended = info.status != RUNNING
        for name, tail in tails.items():
            printer.lines(name, tail.read(final=ended))
        if ended:
            if info.status == "ended-without-record":
                click.echo(f"run {run_dir.name} ended without a record: {info.message}", err=True)
            return
        time.sleep(FOLLOW_POLL_SECONDS)
