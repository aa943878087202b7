from __future__ import annotations

import json

import pytest

from lit.runtime.errors import ProtocolError
from lit.runtime.protocol import (
    ACK_EVERY,
    FRAMES,
    RECEIVED_BY_AGENT,
    RECEIVED_BY_ORCHESTRATOR,
    FrameType,
    Peer,
    check_hello,
    chunk_frame,
    encode_control_frame,
    frame_type_of,
)


def test_frames_roundtrip_in_order_with_sequence_numbers() -> None:
    a, b = Peer(), Peer()
    data = a.send("call", id=1, args=[1]) + a.send("call", id=2, args=[2]) + a.control("hb")
    frames = b.feed(data)
    assert [f["t"] for f in frames] == ["call", "call", "hb"]
    assert [f.get("s") for f in frames] == [1, 2, None]
    assert b.received_seq == 2


def test_partial_lines_are_buffered_until_complete() -> None:
    a, b = Peer(), Peer()
    data = a.send("log", line="x" * 1000)
    assert b.feed(data[:10]) == []
    assert b.feed(data[10:])[0]["line"] == "x" * 1000


def test_acknowledged_frames_are_dropped_and_the_rest_replayed() -> None:
    a, b = Peer(), Peer()
    sent = [a.send("state", n=i) for i in range(5)]
    b.feed(b"".join(sent[:3]))
    # b tells a how far it got (any frame carries "a"); a keeps only what b has not seen.
    a.feed(b.control("hb"))
    assert a.unacked_count() == 2
    assert a.replay_after(3) == sent[3:]


def test_replayed_duplicates_are_ignored() -> None:
    a, b = Peer(), Peer()
    first = a.send("state", n=1)
    second = a.send("state", n=2)
    assert len(b.feed(first + second)) == 2
    assert b.feed(first + second) == []  # a reconnecting sender replays; the receiver drops what it has


def test_a_gap_in_sequence_numbers_is_an_error() -> None:
    a, b = Peer(), Peer()
    a.send("state", n=1)
    lost = a.send("state", n=2)
    with pytest.raises(ProtocolError, match="lost frames"):
        b.feed(lost)


def test_ack_is_due_after_many_frames() -> None:
    a, b = Peer(), Peer()
    for i in range(ACK_EVERY):
        b.feed(a.send("log", line=str(i)))
    assert b.ack_due()
    b.control("ack")
    assert not b.ack_due()


def test_malformed_frame_and_version_mismatch_are_clear_errors() -> None:
    with pytest.raises(ProtocolError, match="malformed frame"):
        Peer().feed(b"not json\n")
    with pytest.raises(ProtocolError, match="without a type"):
        Peer().feed(json.dumps([1, 2]).encode() + b"\n")
    with pytest.raises(ProtocolError, match="protocol 99"):
        check_hello({"t": "hello", "proto": 99})
    check_hello({"t": "hello", "proto": 1})


def test_every_frame_type_is_described_once() -> None:
    names = {value for key, value in vars(FrameType).items() if not key.startswith("_")}
    assert names == set(FRAMES)
    assert all(spec.meaning for spec in FRAMES.values())


def test_frame_type_of_reads_the_frames_own_type_without_parsing() -> None:
    peer = Peer()
    nested = peer.send(FrameType.STATE, d={"x": {"t": "hello"}})  # a value that looks like a hello
    assert frame_type_of(nested) == "state"
    assert frame_type_of(peer.control(FrameType.HELLO, proto=1, received=0)) == "hello"
    assert frame_type_of(peer.send(FrameType.BYE).rstrip(b"\n")) == "bye"
    assert frame_type_of(chunk_frame("1-2", b"QUJD")) == "chunk"
    assert frame_type_of(b"not a frame") is None


def test_an_unsequenced_frame_leaves_the_sequence_alone() -> None:
    line = encode_control_frame(FrameType.PROGRESS, step='shipping "code"')
    assert json.loads(line) == {"t": "progress", "step": 'shipping "code"'}
    assert frame_type_of(line) == "progress"
    receiver = Peer()
    assert receiver.feed(line) == [{"t": "progress", "step": 'shipping "code"'}]
    assert receiver.received_seq == 0


def test_each_side_handles_every_frame_the_other_side_sends(tmp_path) -> None:
    import lit as L
    from lit.runtime.agent import Agent
    from lit.runtime.orchestrator import Orchestrator

    class Flow(L.LightningFlow):
        def run(self) -> None:
            pass

    agent_table = Agent([]).frame_handlers(out_fd=-1)
    orchestrator = Orchestrator(L.LightningApp(Flow()), tmp_path / "app.py", tmp_path / "run")
    orchestrator_table = orchestrator.frame_handlers()
    assert set(agent_table) == RECEIVED_BY_AGENT
    assert set(orchestrator_table) == RECEIVED_BY_ORCHESTRATOR
