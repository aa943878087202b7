"""One work's machine, from a thread: provision (try machines, first contact), start the agent, relay, release.

The thread tells its launcher what it made, shipped and spent through the launcher's methods; the launcher's
own fields are its own."""

from __future__ import annotations

import select
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from lit.runtime.errors import InfrastructureError, LitError
from lit.runtime.protocol import FrameType, encode_control_frame
from lit.runtime.transport import AgentSpec, Placement, short_name

from . import store
from .base import Channel, Cluster, Connection, HostKeyChanged, Lease, Machine, Provider, Unreachable
from .connector import Connector
from .relay import Cancelled, Relay
from .retry import retry
from .shipping import start_agent

if TYPE_CHECKING:
    from .launcher import ClusterLauncher

WAIT_RETRY_SECONDS = 2.0


# How long a work's stream stays open after its agent ended, for the release of its machine to say it is done.
RELEASE_NOTE_WAIT_SECONDS = 60.0


class RemoteAgent(threading.Thread):
    """Prepares one work's machine, starts its agent, then relays bytes until the agent or lit ends."""

    def __init__(self, launcher: ClusterLauncher, spec: AgentSpec, sock: socket.socket,
                 previous: Optional[RemoteAgent] = None) -> None:
        super().__init__(name=f"lit-remote-{spec.work_name}", daemon=True)
        self.previous = previous  # this work's last agent: its machine is released before we reuse it
        self.release_thread: Optional[threading.Thread] = None
        self.launcher = launcher
        self.spec = spec
        self.sock = sock
        self.failure: Optional[Exception] = None
        self.cancelled = False
        self.cluster: Optional[Cluster] = None
        self.provider: Optional[Provider] = None
        self.lease: Optional[Lease] = None
        self.ssh: Optional[Connection] = None
        self.agent_pid: Optional[int] = None
        self.socket_path = ""
        self.attach_command = ""
        self._placement: Optional[Placement] = None
        self.orphan_timeout = launcher.orphan_timeout
        self.heartbeat = min(10.0, self.orphan_timeout / 4)
        self.saw_bye = False
        self.ended_cleanly = False
        self.state_lock = threading.Lock()  # machine_state: the release thread and the final release race
        self.machine_state = "running"
        self.stops: list[tuple[float, float]] = []  # (asked, accepted) wall times of each stop
        self.running_since: Optional[float] = None
        self.kill_thread: Optional[threading.Thread] = None  # killing the agent's process group on its machine
        self.machine_seconds = 0.0

    @property
    def connector(self) -> Connector:
        assert self.cluster is not None and self.provider is not None, "connecting before a machine was acquired"
        return self.launcher.connector_for(self.cluster, self.provider)

    # -- the machine's life ------------------------------------------------------------------------
    def release_machine(self, terminate: bool, final: bool = False) -> None:
        """Stop (or terminate) the machine the provider made for this work; count its time."""
        if self.lease is None or self.cluster is None or self.provider is None:
            return
        with self.state_lock:
            wanted = "terminated" if terminate or self.provider.release_removes else "stopped"
            if self.machine_state == "terminated" or self.machine_state == wanted:
                if final:  # stopped after its last call, kept stopped at the end (--keep-machines)
                    self.launcher.forget_machine(self.lease.machine.id)
                return
            self.machine_state = wanted
        if self.running_since is not None:
            self.machine_seconds += time.monotonic() - self.running_since
            self.running_since = None
        lease, cluster, provider = self.lease, self.cluster, self.provider
        asked = time.time()
        try:
            if terminate:
                provider.terminate(cluster, lease)
            else:
                provider.release(cluster, lease)
                self.stops.append((asked, time.time()))
            if lease.instance_type:
                self.progress(provider.release_note(terminate))
        except LitError as exc:
            self.progress(f"could not release {lease.machine.id}: {exc}")
            return
        finally:
            self._report()
        if lease.instance_type and (terminate or final or provider.release_removes):  # stopped: still ours
            self.launcher.forget_machine(lease.machine.id)

    def _report(self) -> None:
        if self.lease is None or not self.lease.instance_type:
            return
        seconds = self.machine_seconds + (time.monotonic() - self.running_since if self.running_since else 0.0)
        self.launcher.record_machine(self.spec.work_name, self.lease, seconds, self.stops)

    # -- what the orchestrator asks ---------------------------------------------------------------
    def placement(self) -> Placement:
        assert self._placement is not None, "the agent said hello before it was placed"
        return self._placement

    def progress(self, step: str) -> None:
        direct = self.launcher.direct_progress
        if direct is not None:  # the app is ending: the orchestrator no longer reads this stream
            direct(short_name(self.spec.work_name), step)
            return
        line = encode_control_frame(FrameType.PROGRESS, step=step)
        try:
            self.sock.sendall(line)
        except OSError:
            pass

    def kill(self) -> None:
        """End the agent's whole process group on its machine (it did not stop in time)."""
        self.cancelled = True
        if self.ended_cleanly or self.kill_thread is not None:
            return  # it said bye and ended (nothing of it is left to kill), or it is being killed already
        # Not waited for here (a round trip to the machine); the launcher's close() waits for it, so no thread is
        # still talking to a machine while the interpreter shuts down.
        self.kill_thread = threading.Thread(target=self._kill_remote, daemon=True)
        self.kill_thread.start()

    def _kill_remote(self) -> None:
        if self.agent_pid is None or self.cluster is None or self.lease is None:
            return
        try:
            ssh = self.connector.connect(self.lease.machine, self.cluster.key_path, self.known_hosts(), timeout=5)
            try:
                ssh.run(f"kill -9 -- -{self.agent_pid} {self.agent_pid} 2>/dev/null; "
                        f"rm -f {shlex.quote(self.socket_path)} {shlex.quote(self.socket_path)}.pid", timeout=10)
            finally:
                ssh.close()
        except LitError:
            pass  # unreachable: its orphan timeout ends it

    # -- the thread -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.previous is not None and self.previous.release_thread is not None:
                self.previous.release_thread.join()
            if self.previous is not None:
                self.machine_seconds = self.previous.machine_seconds
            self._provision()
            Relay(self).run()
            self.ended_cleanly = True
        except Cancelled:
            self._teardown()
        except LitError as exc:
            self.failure = exc
            self._teardown()
        except Exception as exc:  # a bug or an unmapped error: fail the work with it, never hang
            self.failure = InfrastructureError(f"preparing {short_name(self.spec.work_name)} failed: "
                                               f"{type(exc).__name__}: {exc}")
            self._teardown()
        finally:
            if self.ssh is not None:
                self.ssh.close()
            release = self.release_thread
            if release is not None:  # released after its last call: its "machine stopped" line still goes out
                release.join(RELEASE_NOTE_WAIT_SECONDS)
            try:
                self.sock.close()
            except OSError:
                pass

    def known_hosts(self) -> Path:
        assert self.cluster is not None
        if self.lease is not None and self.lease.known_hosts:
            return Path(self.lease.known_hosts)
        return store.known_hosts_path(self.cluster.name)

    def _teardown(self) -> None:
        if self.agent_pid is not None and self.saw_bye is False and self.failure is not None:
            self._kill_remote()
        if self.lease is not None and self.lease.lease_dir and self.ssh is not None and self.agent_pid is None:
            for index in self.lease.gpu_ids:  # leased but no agent to free them
                try:
                    self.ssh.run(f"rm -rf {shlex.quote(self.lease.lease_dir)}/{index}", timeout=10)
                except LitError:
                    pass
        if self.lease is not None:
            self.launcher.add_load(self.lease.machine.id, -1)
            if self.lease.instance_type and self.machine_state == "running":
                # a machine made for this work that nobody released: never leave it running
                self.release_machine(terminate=not self.launcher.keep_machines)

    def check_cancel(self) -> None:
        """Raise Cancelled once the app has ended (closed our socket) or the launcher cancelled this work."""
        if self.cancelled:
            raise Cancelled("the app ended")
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                raise Cancelled("the app ended")

    # -- provisioning -----------------------------------------------------------------------------
    def _provision(self) -> None:
        compute = self.spec.compute
        owner = f"{self.launcher.run_id}/{self.spec.work_name}"
        waiting = False
        while True:
            last_error: Optional[LitError] = None
            for cluster, provider in self.launcher.options(compute):
                if provider.can_ever_place(cluster, compute) is not None:
                    continue
                tried: set[str] = set()
                while True:
                    self.check_cancel()
                    machine = self.launcher.reserve(cluster, provider, compute, tried)
                    if machine is None:
                        break
                    placed = False
                    try:
                        placed = self._try_machine(cluster, provider, machine, owner)
                    except HostKeyChanged:
                        raise
                    except InfrastructureError as exc:
                        self.progress(f"{machine.target}: {exc}")  # a lost or refused host, named at once
                        last_error = exc
                    finally:
                        if not placed:
                            self.launcher.add_load(machine.id, -1)
                    if placed:
                        assert self.ssh is not None and self.lease is not None
                        self._start(self.ssh, self.lease)
                        return
            if last_error is not None:
                raise last_error
            if not waiting:
                need = f"{compute.gpus} free GPU(s)" if compute.gpus else "a free machine"
                self.progress(f"pending: waiting for {need}")
                waiting = True
            deadline = time.monotonic() + WAIT_RETRY_SECONDS
            while time.monotonic() < deadline:
                self.check_cancel()
                time.sleep(0.1)

    def _try_machine(self, cluster: Cluster, provider: Provider, machine: Machine, owner: str) -> bool:
        lease = provider.acquire(cluster, self.spec.compute, machine, self.launcher.run_id, self.spec.work_name,
                                 self.progress, app=self.launcher.app_name,
                                 made=lambda made: self.launcher.made_machine(cluster, provider, made),
                                 cancelled=lambda: self.cancelled)
        if lease is None:
            return False
        self.cluster, self.provider, self.lease = cluster, provider, lease
        if lease.instance_type:  # a machine made for this run: count its time until it is released
            self.running_since = time.monotonic()
        machine = lease.machine
        self.progress(f"connecting to {machine.target}")
        # A new instance takes a while to boot; a host of the user's answers at once or not at all.
        if lease.instance_type:
            ssh = self._first_contact(cluster, machine, deadline=time.monotonic() + max(300.0, self.orphan_timeout))
        else:
            self.connector.wait(machine, timeout=min(60.0, self.orphan_timeout))
            ssh = self.connector.connect(machine, cluster.key_path, self.known_hosts(), keepalive=self.heartbeat)
        if lease.instance_type:
            self.progress(self.connector.ready)
        claimed = provider.claim(ssh, cluster, self.spec.compute, lease, owner)
        if claimed is None:
            ssh.close()
            provider.release(cluster, lease)
            self.cluster, self.provider, self.lease = None, None, None
            return False
        self.lease, self.ssh = claimed, ssh
        return True

    def _first_contact(self, cluster: Cluster, machine: Machine, deadline: float) -> Connection:
        """A booting instance: until its sshd answers with the pinned key. A wrong key is never accepted; while
        the machine boots (or its address still leads to its predecessor) lit waits, then names the error."""
        def attempt() -> Connection:
            self.check_cancel()  # each attempt is short (refused or unreachable at once): Ctrl-C is not held up
            return self.connector.connect(machine, cluster.key_path, self.known_hosts(), keepalive=self.heartbeat)

        try:  # every 0.2 s: a booting machine's sshd answers the moment it starts
            return retry(attempt, retry_if=(InfrastructureError,), deadline=deadline, first_delay=0.2, max_delay=0.2,
                         factor=1.0)
        except Unreachable as exc:  # the deadline passed (Unreachable is waited out until then)
            cidr = cluster.settings.get("ssh_cidr")
            if cidr:
                raise Unreachable(f"{exc}. SSH to cluster {cluster.name}'s machines is allowed from {cidr} "
                                  "only: if your public address has changed since, run `lit update "
                                  f"cluster {cluster.name}`") from None
            raise

    def _start(self, ssh: Connection, lease: Lease) -> None:
        assert self.cluster is not None and self.provider is not None
        poweroff = self.provider.poweroff_command(self.cluster, lease.machine)
        if self.launcher.object_store(self.cluster, self.provider) is not None:
            files = "urls"
        elif self.provider.idle_delay(self.cluster, self.spec.compute) is not None:
            files = "kept"  # its machine may go after its last call: what it publishes must not go with it
        else:
            files = "relay"
        started = start_agent(ssh, self.launcher, self.spec, lease, poweroff, files, self.progress,
                              self.check_cancel)
        self.agent_pid, self.socket_path = started.pid, started.socket_path
        self.attach_command = started.attach_command
        self._placement = started.placement
        self.progress(f"agent up on {lease.machine.target}")

    # -- the channel the relay reads ----------------------------------------------------------------
    def open_channel(self) -> Channel:
        assert self.cluster is not None and self.lease is not None
        if self.ssh is None:
            self.ssh = self.connector.connect(self.lease.machine, self.cluster.key_path, self.known_hosts(),
                                              timeout=min(10.0, self.orphan_timeout / 2), keepalive=self.heartbeat)
        return self.ssh.channel(self.attach_command)

    def drop_connection(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
            self.ssh = None

    def lost(self, settle: float = 0.0) -> Optional[str]:
        """Why this work's machine is gone for good, as its provider knows (None: it may answer again)."""
        if self.lease is None or self.cluster is None or self.provider is None:
            return None
        try:
            return self.provider.lost(self.cluster, self.lease, settle)
        except LitError:
            return None  # the provider cannot tell now: reconnecting decides

    def target(self) -> str:
        return self.lease.machine.target if self.lease else "its machine"

