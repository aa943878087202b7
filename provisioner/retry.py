"""One retry loop with exponential backoff, for everything lit waits out on its side: a booting machine's sshd, a
dropped connection, a cloud API that has not caught up with itself yet. (The agent keeps its own few lines: it is
standard library only and ships alone.)"""

from __future__ import annotations

import time
from typing import Callable, TypeVar, Union

T = TypeVar("T")
RetryIf = Union[Callable[[BaseException], bool], tuple[type[BaseException], ...]]


def delays(first: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> Callable[[], float]:
    """Successive waits: first, first*factor, ... up to cap."""
    current = [first / factor]

    def next_delay() -> float:
        current[0] = min(current[0] * factor, cap)
        return current[0]

    return next_delay


def retry(attempt: Callable[[], T], *, retry_if: RetryIf, deadline: float, first_delay: float = 0.2,
          max_delay: float = 5.0, factor: float = 2.0, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> T:
    """`attempt()` until it returns. An exception `retry_if` accepts (a predicate, or a tuple of types) is waited out
    with backoff; once the next wait would end past `deadline` (on `clock`) it is raised instead, so lit never waits
    longer than asked. Any other exception is raised at once. `sleep` may do useful work while it waits (check for
    cancellation, drain a socket) and may raise to stop."""
    if isinstance(retry_if, tuple):
        types = retry_if
        accepts: Callable[[BaseException], bool] = lambda exc: isinstance(exc, types)  # noqa: E731
    else:
        accepts = retry_if
    next_delay = delays(first_delay, factor, max_delay)
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not accepts(exc):
                raise
            delay = next_delay()
            if clock() + delay > deadline:
                raise
        sleep(delay)
