"""Relaying the protocol between the orchestrator's socket and an SSH channel to a work's agent.

The relay passes lines through without parsing them (frames can be megabytes of file data); it only reads each
line's type (protocol.frame_type_of, no JSON parsing) to see the hello (until the orchestrator has answered the
agent's hello, what it sends is replayed later, so it is dropped) and the bye (the agent ended as asked). A dropped
or silent connection is reconnected with backoff until the orphan timeout since the agent was last heard from."""

from __future__ import annotations

import select
import socket
import time
from typing import TYPE_CHECKING, Optional

from lit.runtime.errors import InfrastructureError, LitError
from lit.runtime.protocol import FrameType, frame_type_of
from lit.runtime.transport import StreamSocket

from .base import AgentGone, Channel, HostKeyChanged, Unreachable
from .retry import retry

if TYPE_CHECKING:
    from .remote import RemoteAgent


# A dropped connection can come before the provider's API says why its machine went (a pod's status after its
# container was killed): how long to wait for that reason.
LOST_SETTLE_SECONDS = 3.0


class Cancelled(LitError):
    """The orchestrator ended before this machine was ready."""


class SocketTransport(StreamSocket):
    """The orchestrator's end of a socket pair whose other end a RemoteAgent relays."""

    def __init__(self, sock: socket.socket, remote: RemoteAgent) -> None:
        super().__init__(sock)
        self.remote = remote

    def close(self) -> None:
        self.remote.cancelled = True
        super().close()

    def kill(self) -> None:
        self.remote.kill()

    def wait(self, timeout: float) -> Optional[int]:
        self.remote.join(timeout)
        if self.remote.is_alive():
            return None
        try:
            self.sock.close()
        except OSError:
            pass
        return 0 if self.remote.failure is None else 1

    def failure(self) -> Optional[Exception]:
        return self.remote.failure


class Relay:
    """One work's relay, from its agent's first connection until the agent or lit ends."""

    def __init__(self, remote: RemoteAgent) -> None:
        self.remote = remote
        self.sock = remote.sock

    def _reconnect(self, since: float, reason: str) -> Channel:
        """A new channel to the agent, with backoff, until the orphan timeout since the last word from it."""
        remote = self.remote
        assert remote.lease is not None
        target = remote.lease.machine.target
        remote.progress(f"lost contact with {target} ({reason}); reconnecting")

        def attempt() -> Channel:
            why = remote.lost()
            if why:
                raise AgentGone(why)
            remote.drop_connection()
            return remote.open_channel()

        def retried(exc: BaseException) -> bool:  # a changed host key, or a machine gone for good, is not waited out
            return isinstance(exc, InfrastructureError) and not isinstance(exc, (HostKeyChanged, AgentGone))

        try:
            channel = retry(attempt, retry_if=retried, deadline=since + remote.orphan_timeout, sleep=self._drain)
        except (HostKeyChanged, AgentGone):
            raise
        except InfrastructureError as exc:
            silent = time.monotonic() - since
            raise Unreachable(f"{target} unreachable for {silent:.0f} s (orphan timeout "
                              f"{remote.orphan_timeout:.0f} s): {exc}") from None
        remote.progress(f"reconnected to {target}")
        return channel

    def _drain(self, seconds: float) -> None:
        """Wait, reading the orchestrator's side meanwhile (it is replayed later); Cancelled once it has ended."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            readable, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
            if readable and not self.sock.recv(262144):
                raise Cancelled("the app ended")

    def run(self) -> None:
        remote = self.remote
        channel = remote.open_channel()
        last_heard = time.monotonic()
        to_agent, from_agent = bytearray(), bytearray()  # partial lines (large frames arrive in many reads)
        synced = False  # until the orchestrator answers the agent's hello, what it sends is replayed later
        closing = False
        close_deadline = 0.0
        while True:
            readable, _, _ = select.select([self.sock, channel], [], [], 1.0)
            now = time.monotonic()
            if self.sock in readable and not closing:
                data = self.sock.recv(262144)
                if not data:
                    # lit is done with this work: pass on what it said (bye), then let the agent end.
                    closing = True
                    close_deadline = now + 3.0
                    try:
                        channel.shutdown_write()
                    except OSError:
                        pass  # already closed: the agent ends on its own
                elif b"\n" not in data:
                    to_agent += data
                else:
                    to_agent += data
                    *lines, rest = to_agent.split(b"\n")
                    to_agent = bytearray(rest)
                    for line in lines:
                        if not synced and frame_type_of(line) == FrameType.HELLO:
                            synced = True
                        if synced:
                            try:
                                channel.sendall(line + b"\n")
                            except OSError:  # the channel closed under us: its end is read below, then handled
                                break
            if channel in readable:
                data = channel.recv(262144)
                if data and b"\n" not in data:
                    last_heard = now
                    from_agent += data
                elif data:
                    last_heard = now
                    from_agent += data
                    *lines, rest = from_agent.split(b"\n")
                    from_agent = bytearray(rest)
                    for line in lines:
                        if frame_type_of(line) == FrameType.BYE:
                            remote.saw_bye = True
                        try:
                            self.sock.sendall(line + b"\n")
                        except OSError:
                            pass
                else:
                    status = channel.exit_status if channel.status_event.wait(1.0) else None
                    channel.close()
                    if closing or remote.saw_bye or remote.machine_state != "running":
                        return  # it ended as asked, or its machine was stopped after its last call
                    why = remote.lost(settle=LOST_SETTLE_SECONDS)
                    if why:
                        raise AgentGone(why)
                    if status is not None and status >= 0:
                        raise AgentGone(f"the agent on {remote.target()} ended without a word (killed?)")
                    channel = self._reconnect(last_heard, "connection closed")
                    to_agent, from_agent, synced = bytearray(), bytearray(), False
                    last_heard = time.monotonic()
                    continue
            if closing and now > close_deadline:
                channel.close()
                return
            if not closing and now - last_heard > 3 * remote.heartbeat + 1:
                channel.close()  # a silent partition: nothing, not even heartbeats, for three beats
                channel = self._reconnect(last_heard, f"silent for {now - last_heard:.0f} s")
                to_agent, from_agent, synced = bytearray(), bytearray(), False
