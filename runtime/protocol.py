"""The flow <-> agent protocol: newline-delimited JSON frames over any ordered byte stream.

A frame is one line of JSON with a type "t". Reliable frames carry a sequence number "s" (per direction,
from 1); every frame carries "a", the highest sequence number its sender has received in order. A sender
keeps reliable frames until the peer acknowledges them, so after a reconnect each side replays what the
other has not seen (the hello says how far each got). Control frames ("hb" heartbeat, "ack") carry no
sequence number and are never replayed.

Frames, agent -> orchestrator:  hello, ready, state, status, log, error, bye
Frames, orchestrator -> agent:  hello, init, call, stop, bye
Either way:                     hb, ack

This module runs on the agent's Python (3.9+, standard library only).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Optional

from .errors import ProtocolError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
CONTROL_TYPES = frozenset({"hb", "ack"})
# Acknowledge explicitly after this many unacknowledged frames, so the peer's replay buffer stays small.
ACK_EVERY = 64
MAX_FRAME_BYTES = 64 * 1024 * 1024

Frame = dict[str, Any]


class Peer:
    """One side of a conversation: sequence numbers, acknowledgements, replay and line framing.

    It does no I/O: `send` and `control` return bytes to write, `feed` takes bytes read.
    """

    def __init__(self) -> None:
        self.sent_seq = 0
        self.received_seq = 0
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._since_ack = 0
        self._parts: list[bytes] = []  # a partial line (big frames arrive in many reads)
        self._pending = 0

    # -- sending ----------------------------------------------------------------------------------
    def send(self, type_: str, **fields: Any) -> bytes:
        """Encode a reliable frame; it is kept until the peer acknowledges it."""
        self.sent_seq += 1
        fields["t"] = type_
        fields["s"] = self.sent_seq
        fields["a"] = self.received_seq
        data = _encode(fields)
        self._unacked.append((self.sent_seq, data))
        self._since_ack = 0
        return data

    def reserve(self) -> int:
        """Take the next sequence number now and fill in its frame later (fill), e.g. an init frame whose
        contents are known only once the agent's machine is placed. Nothing is replayed until filled."""
        self.sent_seq += 1
        self._unacked.append((self.sent_seq, b""))
        return self.sent_seq

    def fill(self, seq: int, type_: str, **fields: Any) -> None:
        fields["t"] = type_
        fields["s"] = seq
        fields["a"] = self.received_seq
        for index, (s, _) in enumerate(self._unacked):
            if s == seq:
                self._unacked[index] = (seq, _encode(fields))
                return
        raise ValueError(f"frame {seq} is not reserved")

    def control(self, type_: str, **fields: Any) -> bytes:
        fields["t"] = type_
        fields["a"] = self.received_seq
        self._since_ack = 0
        return _encode(fields)

    def ack_due(self) -> bool:
        return self._since_ack >= ACK_EVERY

    def unacked_count(self) -> int:
        return len(self._unacked)

    def replay_after(self, seq: int) -> list[bytes]:
        """Frames the peer has not received, given the last sequence number it says it got."""
        self._drop_acked(seq)
        return [data for s, data in self._unacked if s > seq]

    # -- receiving --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        """Take bytes from the stream; return the new frames in order (duplicates dropped)."""
        if b"\n" not in data:
            self._parts.append(data)
            self._pending += len(data)
            if self._pending > MAX_FRAME_BYTES:
                raise ProtocolError(f"frame larger than {MAX_FRAME_BYTES} bytes")
            return []
        buffer = b"".join([*self._parts, data])
        *lines, rest = buffer.split(b"\n")
        self._parts = [rest] if rest else []
        self._pending = len(rest)
        frames = []
        for line in lines:
            if not line.strip():
                continue
            if line.startswith(CHUNK_PREFIX):
                frames.append(parse_chunk(line))  # file data: not decoded as JSON here, forwarded as is
                continue
            frame = self.accept(_decode(line))
            if frame is not None:
                frames.append(frame)
        return frames

    def accept(self, frame: Frame) -> Optional[Frame]:
        ack = frame.get("a")
        if isinstance(ack, int):
            self._drop_acked(ack)
        seq = frame.get("s")
        if seq is None:
            return frame
        if seq <= self.received_seq:
            return None  # a replayed frame we already have
        if seq != self.received_seq + 1:
            raise ProtocolError(f"frame {seq} arrived after {self.received_seq}: the stream lost frames")
        self.received_seq = seq
        self._since_ack += 1
        return frame

    def reset_stream(self) -> None:
        """Forget a partial line: the byte stream was replaced (reconnect)."""
        self._parts = []
        self._pending = 0

    def _drop_acked(self, ack: int) -> None:
        while self._unacked and self._unacked[0][0] <= ack:
            self._unacked.popleft()


# File data travels in chunk frames written and read by hand: a JSON parser would copy megabytes per frame.
# They carry no sequence number and no acknowledgement, so they can be forwarded between streams unchanged.
CHUNK_PREFIX = b'{"t":"chunk","xfer":"'


def chunk_frame(xfer: str, data_b64: bytes) -> bytes:
    return CHUNK_PREFIX + xfer.encode() + b'","b":"' + data_b64 + b'"}\n'


def parse_chunk(line: bytes) -> Frame:
    """{"t": "chunk", "xfer": ID, "raw": the line without its newline, "b": a view of the base64 payload}."""
    start = len(CHUNK_PREFIX)
    end = line.index(b'"', start)
    payload_start = end + len(b'","b":"')
    payload = memoryview(line)[payload_start:line.rindex(b'"')]
    return {"t": "chunk", "xfer": line[start:end].decode(), "raw": line, "b": payload}


def _encode(frame: Frame) -> bytes:
    return json.dumps(frame, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _decode(line: bytes) -> Frame:
    try:
        frame = json.loads(line)
    except ValueError as exc:
        preview = line[:80].decode(errors="replace")
        raise ProtocolError(f"malformed frame {preview!r}: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("t"), str):
        raise ProtocolError(f"frame without a type: {line[:80]!r}")
    return frame


def check_hello(frame: Frame) -> None:
    """Raise ProtocolError unless `frame` is a hello in a protocol version we speak."""
    if frame.get("t") != "hello":
        raise ProtocolError(f"expected hello, got {frame.get('t')!r}")
    version = frame.get("proto")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"peer speaks protocol {version!r}; this lit speaks {list(SUPPORTED_VERSIONS)}: "
                            "install the same lit version on both ends")
