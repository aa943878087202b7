"""lit's one retry helper, on a fake clock: no test here sleeps."""

from __future__ import annotations

from typing import Callable

import pytest

from lit.provisioner.retry import delays, retry


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, error: Callable[[], Exception], value: str = "done") -> Callable[[], str]:
    calls = [0]

    def attempt() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error()
        return value

    return attempt


def test_returns_at_once_on_success() -> None:
    t = FakeTime()
    assert retry(lambda: 42, retry_if=(OSError,), deadline=t.now + 10, sleep=t.sleep, clock=t.clock) == 42
    assert t.slept == []


def test_waits_out_what_retry_if_accepts() -> None:
    t = FakeTime()
    attempt = failing(3, lambda: ConnectionRefusedError("refused"))
    assert retry(attempt, retry_if=(OSError,), deadline=t.now + 10, sleep=t.sleep, clock=t.clock) == "done"
    assert len(t.slept) == 3


def test_a_predicate_chooses_what_to_retry() -> None:
    t = FakeTime()
    attempt = failing(2, lambda: RuntimeError("throttled"))
    assert retry(attempt, retry_if=lambda exc: "throttled" in str(exc), deadline=t.now + 10, sleep=t.sleep,
                 clock=t.clock) == "done"
    with pytest.raises(RuntimeError, match="denied"):
        retry(failing(1, lambda: RuntimeError("denied")), retry_if=lambda exc: "throttled" in str(exc),
              deadline=t.now + 10, sleep=t.sleep, clock=t.clock)


def test_other_errors_are_raised_at_once() -> None:
    t = FakeTime()
    with pytest.raises(ValueError):
        retry(failing(1, lambda: ValueError("bad")), retry_if=(OSError,), deadline=t.now + 10, sleep=t.sleep,
              clock=t.clock)
    assert t.slept == []


def test_the_last_error_is_raised_once_the_next_wait_would_pass_the_deadline() -> None:
    t = FakeTime()
    count = [0]

    def attempt() -> None:
        count[0] += 1
        raise TimeoutError(f"attempt {count[0]}")

    with pytest.raises(TimeoutError) as caught:
        retry(attempt, retry_if=(OSError,), deadline=t.now + 2, sleep=t.sleep, clock=t.clock)
    assert str(caught.value) == "attempt 4"  # the last error, not the first
    assert t.slept == [0.2, 0.4, 0.8]  # then 1.6 s more would end past the deadline: lit never waits longer than asked


def test_the_backoff_doubles_up_to_the_cap() -> None:
    t = FakeTime()
    attempt = failing(7, lambda: OSError("down"))
    retry(attempt, retry_if=(OSError,), deadline=t.now + 1000, first_delay=0.5, max_delay=4.0, sleep=t.sleep,
          clock=t.clock)
    assert t.slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_delays_start_at_first_and_stop_at_the_cap() -> None:
    next_delay = delays(first=0.2, factor=3.0, cap=2.0)
    assert [round(next_delay(), 6) for _ in range(4)] == [0.2, 0.6, 1.8, 2.0]


def test_sleep_may_raise_to_stop() -> None:
    def cancelled(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retry(failing(1, lambda: OSError("down")), retry_if=(OSError,), deadline=1e12, sleep=cancelled)
