"""The flow <-> agent protocol: newline-delimited JSON frames over any ordered byte stream.

A frame is one line of JSON with a type "t". Reliable frames carry a sequence number "s" (per direction,
from 1); every frame carries "a", the highest sequence number its sender has received in order. A sender
keeps reliable frames until the peer acknowledges them, so after a reconnect each side replays what the
other has not seen (the hello says how far each got). Control frames (heartbeats, acks, file chunks) carry no
sequence number and are never replayed.

Every frame type, its direction, its fields and what it means: FrameType and FRAMES below (the one list; the
agent's and the orchestrator's dispatch tables are tested against it).

This module runs on the agent's Python (3.9+, standard library only).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from .errors import ProtocolError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
# Acknowledge explicitly after this many unacknowledged frames, so the peer's replay buffer stays small.
ACK_EVERY = 64
MAX_FRAME_BYTES = 64 * 1024 * 1024

Frame = dict[str, Any]


class FrameType:
    """The frame types, as they are spelled in "t" on the wire. FRAMES says what each carries and means."""

    HELLO = "hello"
    INIT = "init"
    CALL = "call"
    STOP = "stop"
    BYE = "bye"
    READY = "ready"
    STATE = "state"
    STATUS = "status"
    LOG = "log"
    ERROR = "error"
    PROGRESS = "progress"
    REPLY = "reply"
    FETCH = "fetch"
    SERVE = "serve"
    SERVE_CANCEL = "serve_cancel"
    XFER_CANCEL = "xfer_cancel"
    CHUNK = "chunk"
    CHUNK_END = "chunk_end"
    DRIVE_GET = "drive_get"
    DRIVE_PUT_BEGIN = "drive_put_begin"
    DRIVE_PUT_DONE = "drive_put_done"
    DRIVE_LIST = "drive_list"
    DRIVE_DELETE = "drive_delete"
    PRESIGN = "presign"
    HB = "hb"
    ACK = "ack"


class Direction(Enum):
    TO_AGENT = "orchestrator -> agent"
    TO_ORCHESTRATOR = "agent -> orchestrator"
    BOTH = "either way"


@dataclass(frozen=True)
class FrameSpec:
    """One frame type: who sends it, whether it is sequenced and replayed (reliable) or not (control), the fields
    it carries besides "t", "s" and "a", and what it means."""

    type: str
    direction: Direction
    reliable: bool
    fields: Mapping[str, str]
    meaning: str


_TO_AGENT, _TO_ORCHESTRATOR, _BOTH = Direction.TO_AGENT, Direction.TO_ORCHESTRATOR, Direction.BOTH
_REQUEST = "(rid: the request id its reply names)"

FRAMES: dict[str, FrameSpec] = {spec.type: spec for spec in (
    # -- a connection and the work's life --------------------------------------------------------------------
    FrameSpec(FrameType.HELLO, _BOTH, False,
              {"proto": "the protocol version", "received": "the last sequence number received (replay after it)",
               "pid": "agent only: its process id", "python": "agent only: its Python version",
               "host": "agent only: its host name"},
              "The first frame on every connection, each way. Nothing else is sent on a connection until the "
              "orchestrator's hello; then each side replays what the other has not received."),
    FrameSpec(FrameType.INIT, _TO_AGENT, True,
              {"app": "the app file", "work": "the work's name in the tree", "workdir": "where it runs",
               "cls": "module:qualname of its class", "init": "its encoded constructor arguments, or null",
               "env": "environment variables", "port": "its port", "internal_ip": "its machine's address",
               "heartbeat": "seconds between heartbeats", "orphan_timeout": "silence after which it ends",
               "storage": "where files go (kind local / relay / urls)", "leases": "GPU lease folders it holds",
               "poweroff": "the command that powers its machine off when orphaned",
               "bind_host": "the address its servers listen on"},
              "The first reliable frame: which work to load and how. Its contents are filled in once the "
              "work's machine is placed (Peer.reserve / Peer.fill)."),
    FrameSpec(FrameType.READY, _TO_ORCHESTRATOR, True, {"pid": "the agent's process id"},
              "The work is loaded and set up; calls may run."),
    FrameSpec(FrameType.CALL, _TO_AGENT, True,
              {"id": "the call's id", "args": "encoded positional arguments", "kwargs": "encoded keyword arguments",
               "state": "attributes the flow changed since the work last had them"},
              "Run the work's run() once."),
    FrameSpec(FrameType.STATUS, _TO_ORCHESTRATOR, True,
              {"call": "the call's id (null: none running)", "stage": "running / succeeded / failed / stopped",
               "message": "why it failed or stopped", "traceback": "the user's traceback"},
              "A call started or ended."),
    FrameSpec(FrameType.STATE, _TO_ORCHESTRATOR, True, {"d": "attribute -> encoded value"},
              "Attributes of the work that changed in its process."),
    FrameSpec(FrameType.LOG, _TO_ORCHESTRATOR, True, {"stream": "stdout / stderr", "line": "one line, no newline"},
              "A line the work (or a child process of it) printed."),
    FrameSpec(FrameType.ERROR, _TO_ORCHESTRATOR, True,
              {"message": "what went wrong", "traceback": "the user's traceback, if the app raised"},
              "The agent cannot go on: the work failed to load, or the peer spoke something it does not "
              "understand (then sent as a control frame)."),
    FrameSpec(FrameType.PROGRESS, _TO_ORCHESTRATOR, False, {"step": "what is being done"},
              "A step in preparing the work's machine. Written into the agent's stream by the launcher's relay "
              "(encode_control_frame), not by the agent."),
    FrameSpec(FrameType.STOP, _TO_AGENT, True, {},
              "End the work: it runs on_exit(), reports the call stopped and says bye."),
    FrameSpec(FrameType.BYE, _BOTH, True, {},
              "This side is done: the orchestrator's bye ends the agent; the agent's follows a stop."),
    # -- files, through the orchestrator ---------------------------------------------------------------------
    FrameSpec(FrameType.FETCH, _TO_ORCHESTRATOR, True,
              {"xfer": "the transfer id", "sha": "the file's sha256", "origin": "the work that produced it"},
              "Send me this file (relay store): the orchestrator asks its producer (serve) and forwards the "
              "chunks."),
    FrameSpec(FrameType.SERVE, _TO_AGENT, True, {"xfer": "the transfer id", "sha": "the file's sha256"},
              "Stream this published file as chunks of transfer xfer."),
    FrameSpec(FrameType.SERVE_CANCEL, _TO_AGENT, False, {"xfer": "the transfer id"},
              "Its receiver gave the transfer up: stop sending it."),
    FrameSpec(FrameType.XFER_CANCEL, _TO_ORCHESTRATOR, False, {"xfer": "the transfer id"},
              "I gave this transfer up (I ask again): drop what still comes for it."),
    FrameSpec(FrameType.CHUNK, _BOTH, False, {"xfer": "the transfer id", "b": "base64 data"},
              "A piece of a file. Written and parsed by hand (chunk_frame, parse_chunk), forwarded unchanged."),
    FrameSpec(FrameType.CHUNK_END, _BOTH, False,
              {"xfer": "the transfer id", "ok": "whether the file arrived whole", "error": "why not",
               "again": "cut by a lost connection: ask again"},
              "The last frame of a transfer."),
    FrameSpec(FrameType.DRIVE_GET, _TO_ORCHESTRATOR, True,
              {"xfer": "the transfer id", "drive": "the drive's name", "key": "the file in it"},
              "Send me this drive file as chunks (relay store)."),
    FrameSpec(FrameType.DRIVE_PUT_BEGIN, _TO_ORCHESTRATOR, True,
              {"rid": _REQUEST, "drive": "the drive's name", "key": "the file in it"},
              "I am about to upload a drive file: reply with the transfer id to send its chunks under."),
    FrameSpec(FrameType.DRIVE_PUT_DONE, _TO_ORCHESTRATOR, True, {"rid": _REQUEST, "xfer": "the upload's id"},
              "Did the upload arrive? Reply ok, or error (and again when a lost connection cut it)."),
    FrameSpec(FrameType.DRIVE_LIST, _TO_ORCHESTRATOR, True,
              {"rid": _REQUEST, "drive": "the drive's name", "prefix": "keys starting with it"},
              "Reply with the drive's keys (items)."),
    FrameSpec(FrameType.DRIVE_DELETE, _TO_ORCHESTRATOR, True,
              {"rid": _REQUEST, "drive": "the drive's name", "key": "the file in it"},
              "Delete a drive file; reply ok."),
    FrameSpec(FrameType.PRESIGN, _TO_ORCHESTRATOR, True,
              {"rid": _REQUEST, "op": "get / put", "key": "the object's key"},
              "Reply with a short-lived URL for one object of the object store (url, or error)."),
    FrameSpec(FrameType.REPLY, _TO_AGENT, True,
              {"re": "the rid of the request it answers", "xfer": "drive_put_begin: the upload's id",
               "ok": "drive_put_done, drive_delete", "error": "why it failed", "again": "drive_put_done: retry",
               "items": "drive_list: the keys", "url": "presign: the URL"},
              "The answer to a request (drive_put_begin, drive_put_done, drive_list, drive_delete, presign)."),
    # -- keeping the connection ------------------------------------------------------------------------------
    FrameSpec(FrameType.HB, _BOTH, False, {}, "A heartbeat: I am alive (and, in \"a\", how far I got)."),
    FrameSpec(FrameType.ACK, _BOTH, False, {}, "How far I got (in \"a\"), sent after ACK_EVERY frames."),
)}

# Which frames each side must handle: what the other side sends.
RECEIVED_BY_AGENT = frozenset(t for t, spec in FRAMES.items() if spec.direction is not Direction.TO_ORCHESTRATOR)
RECEIVED_BY_ORCHESTRATOR = frozenset(t for t, spec in FRAMES.items() if spec.direction is not Direction.TO_AGENT)
CONTROL_TYPES = frozenset(t for t, spec in FRAMES.items() if not spec.reliable)


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


def encode_control_frame(type_: str, **fields: Any) -> bytes:
    """An unsequenced frame from outside the conversation (the launcher's relay telling the orchestrator a
    progress step): no "s", no "a", so neither peer's sequence numbers move."""
    fields["t"] = type_
    return _encode(fields)


_TYPE_KEY = b'"t":"'


def frame_type_of(line: bytes) -> Optional[str]:
    """The type of the encoded frame `line` without parsing it (a relay watching for hello and bye).

    Exact for every frame lit writes: a chunk starts with its type; any other frame has "t" after its own fields
    (followed only by the numbers "s" and "a"), so the last '"t":"' in the line is the frame's, even when a
    field's value holds a nested object with a "t" key of its own."""
    if line.startswith(CHUNK_PREFIX):
        return FrameType.CHUNK
    start = line.rfind(_TYPE_KEY)
    if start < 0:
        return None
    start += len(_TYPE_KEY)
    end = line.find(b'"', start)
    return line[start:end].decode(errors="replace") if end > 0 else None


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
    if frame.get("t") != FrameType.HELLO:
        raise ProtocolError(f"expected hello, got {frame.get('t')!r}")
    version = frame.get("proto")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"peer speaks protocol {version!r}; this lit speaks {list(SUPPORTED_VERSIONS)}: "
                            "install the same lit version on both ends")
