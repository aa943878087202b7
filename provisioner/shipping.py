"""Getting a work's agent running on its machine: the bundle unpacked (once per host and bundle), a venv for the
app's requirements.txt, the detached agent started, and the Placement the orchestrator hands the work."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from lit.runtime.errors import InfrastructureError
from lit.runtime.transfers import KEPT_DRIVES
from lit.runtime.transport import AgentSpec, Placement, short_name

from . import hostscript
from .base import Connection, Lease, Progress

if TYPE_CHECKING:
    from .launcher import ClusterLauncher

# Unpacks the bundle on the host, before lit's code is there: sent as source to `python -c`.
EXTRACT = hostscript.source("lit.runtime.host.extract").decode()
# Where a connection to the detached agent starts, inside the unpacked bundle (its PYTHONPATH is `_lit`).
ATTACH = "_lit/lit/runtime/host/attach.py"


@dataclass(frozen=True)
class Started:
    """A work's detached agent, running on its machine."""

    pid: int  # it leads its process group: `kill -- -PID` ends the work's processes with it
    socket_path: str  # where it listens on the host; each connection attaches to it
    attach_command: str  # the command whose stdin/stdout is a connection to the agent
    placement: Placement


def start_agent(ssh: Connection, launcher: ClusterLauncher, spec: AgentSpec, lease: Lease,
                poweroff: Optional[list[str]], files: str, progress: Progress,
                check_cancel: Callable[[], None]) -> Started:
    """Ship the bundle unless the host has it, make the venv, start the agent; its Placement for the works."""
    machine = lease.machine
    bundle = launcher.bundle
    q = shlex.quote
    if lease.fresh_home:  # a machine made for this work: nothing of lit is there yet
        found = [lease.fresh_home, "need"]
    else:  # one round trip: where home is, and whether the bundle is there already
        found = ssh.check(f'printf "%s\\n" "$HOME"; test -f "$HOME/.lit/bundles/{bundle.sha256}/.complete" && '
                          "echo have || echo need", "reading $HOME").split()
    home = found[0]
    bundle_dir = f"{home}/.lit/bundles/{bundle.sha256}"
    python = machine.python or "python3"
    work = short_name(spec.work_name)
    key = hashlib.sha1(f"{launcher.run_id}/{spec.work_name}".encode()).hexdigest()[:16]
    socket_path = f"{home}/.lit/agents/{key}.sock"
    run_root = f"{home}/.lit/runs/{launcher.run_id}"
    env = {"PYTHONPATH": f"{bundle_dir}/_lit", "PYTHONUNBUFFERED": "1",
           # GPU works see only their leased GPUs; CPU works see none.
           "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in lease.gpu_ids)}
    env_text = " ".join(f"{k}={q(v)}" for k, v in env.items())

    def start(python: str) -> str:
        return (f"mkdir -p {q(run_root)}/logs && cd {q(home)} && env {env_text} {q(python)} -m lit.runtime.agent "
                f"detached --socket {q(socket_path)} --log {q(run_root)}/logs/{q(work)}.log")

    ship = f"mkdir -p {q(home)}/.lit/bundles && {q(python)} -c {q(EXTRACT)} {q(bundle_dir)}"
    venv = bool(bundle.requirements.strip())
    out: Optional[str] = None
    with launcher.host_lock(machine.id):  # works placed on one host share one upload
        if found[-1] == "have" or launcher.has_shipped(machine.id, bundle.sha256):
            progress("code already on the host")
        else:
            check_cancel()
            progress(f"shipping code ({bundle.size / 1024:.0f} KB)")
            if venv:
                ssh.check(ship, "unpacking the code", stdin=bundle.data)
            else:  # one round trip: the code on stdin, unpacked, then the agent started
                out = ssh.check(f"{ship} && {start(python)}", "unpacking the code and starting the agent",
                                stdin=bundle.data)
            launcher.mark_shipped(machine.id, bundle.sha256)
    if venv:
        python = make_venv(ssh, bundle.requirements, home, bundle_dir, python, progress)
    if out is None:
        check_cancel()
        out = ssh.check(start(python), "starting the agent")
    words = out.split()
    if len(words) < 2 or words[0] != "ready":
        raise InfrastructureError(f"{machine.target}: the agent did not start: {out.strip()[:200]}")
    # The relay to the detached agent: standard library only, run by path without importing lit or site, since
    # every connection and reconnection starts one.
    attach_command = f"{q(python)} -S {q(bundle_dir)}/{ATTACH} {q(socket_path)}"
    leases = [f"{lease.lease_dir}/{i}" for i in lease.gpu_ids] if lease.lease_dir else []
    placement = Placement(  # the other works reach this one at its internal (private) address
        machine.internal_address, f"{run_root}/works/{work}", f"{bundle_dir}/app/{bundle.app_relpath}",
        machine.target,
        {"leases": leases, "poweroff": poweroff,
         "storage": storage(files, run_root, launcher.run_id),
         "bind_host": "0.0.0.0"},  # a work's server on its own machine serves the other works
    )
    return Started(int(words[1]), socket_path, attach_command, placement)


def storage(files: str, run_root: str, run_id: str) -> dict[str, str]:
    """Files between works: "urls", through an object store with presigned URLs where the cluster has one;
    otherwise relayed from the producer's machine through lit's own connections, and ("kept") also kept with lit as
    soon as they are published where the machine goes after its work's last call."""
    if files == "urls":
        return {"kind": "urls", "cache": f"{run_root}/artifacts"}
    spec = {"kind": "relay", "cache": f"{run_root}/artifacts"}
    if files == "kept":
        spec["keep"] = f"{KEPT_DRIVES}/{run_id}"
    return spec


def make_venv(ssh: Connection, requirements: str, home: str, bundle_dir: str, python: str,
              progress: Progress) -> str:
    """The app's requirements.txt in a venv on the host, cached by the file's hash; its python."""
    digest = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    venv = f"{home}/.lit/venvs/{digest}"
    wheels = f"{bundle_dir}/app/wheels"
    q = shlex.quote
    # Stock Ubuntu and Debian images have no ensurepip (python3-venv is not installed), so `python3 -m venv`
    # fails there: make the venv without pip and install pip into it from a pip wheel, the app's own
    # (wheels/pip-*.whl) or the one lit brings in the bundle (_pip/), run from the wheel itself as ensurepip
    # does. No package is installed on the host and no sudo is needed.
    pip_from_wheel = (
        f"pipwhl=$(ls {q(wheels)}/pip-*.whl {q(bundle_dir)}/_pip/pip-*.whl 2>/dev/null | head -n 1) && "
        "if [ -z \"$pipwhl\" ]; then echo 'the host has no ensurepip (python3-venv) and no pip wheel came with "
        "the code: install python3-venv on the host or put a pip wheel in the app folder under wheels/' >&2; "
        f"exit 1; fi && {q(python)} -m venv --without-pip {q(venv)} && "
        f"PYTHONPATH=\"$pipwhl\" {q(venv)}/bin/python -m pip install -q --no-index --disable-pip-version-check "
        "\"$pipwhl\""
    )
    script = (
        f"if [ ! -f {q(venv)}/.complete ]; then rm -rf {q(venv)} && "
        f"if {q(python)} -c 'import ensurepip' 2>/dev/null; then {q(python)} -m venv {q(venv)}; "
        f"else {pip_from_wheel}; fi && "
        f"if [ -d {q(wheels)} ]; then idx='--no-index --find-links {wheels}'; else idx=''; fi && "
        f"{q(venv)}/bin/pip install -q --disable-pip-version-check $idx -r {q(bundle_dir)}/app/requirements.txt "
        f"&& touch {q(venv)}/.complete; fi"
    )
    code, _, _ = ssh.run(f"test -f {q(venv)}/.complete")
    if code != 0:
        progress("installing requirements.txt")
    ssh.check(f"mkdir -p {q(home)}/.lit/venvs && flock {q(venv)}.lock sh -c {q(script)}",
              "installing requirements.txt", timeout=1800)
    return f"{venv}/bin/python"
