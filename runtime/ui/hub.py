"""What the dashboard knows about a run, and who is listening: the one place shared between the loop's thread
(which records) and the HTTP server's threads (which read and stream).

The loop must never wait for a browser. Recording takes one short lock and appends to bounded buffers; each page
has its own bounded queue, and a page that falls behind loses its queue and gets one fresh snapshot instead (its
events coalesce into the current state). Nothing here does I/O.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from typing import Any, Optional

LOG_LINES_PER_WORK = 2000  # kept per work, so a chatty work cannot push a quiet one's lines out
MAX_LINE_CHARS = 4000  # a line longer than this is cut: one huge line must not stall every page
QUEUE_LIMIT = 2000  # events waiting for one page before it is sent a snapshot instead

Event = dict[str, Any]


class Subscriber:
    """One page's event stream: what it has not been sent yet."""

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self.resync = True  # the first thing a page gets is the whole state
        self.wake = threading.Event()


class Hub:
    """The run's state (run facts, component tree, schedules, works, recent log lines) and its subscribers."""

    def __init__(self, run: Optional[dict[str, Any]] = None) -> None:
        self._lock = threading.Lock()
        self._gone = threading.Condition(self._lock)  # notified when a subscriber leaves (for close's flush)
        self._run: dict[str, Any] = {"started": time.time(), "ended": None, **(run or {})}
        self._tree: Optional[dict[str, Any]] = None
        self._schedules: list[dict[str, Any]] = []
        self._layout: list[dict[str, Any]] = []  # the app's own tabs (configure_layout), as the page shows them
        self._works: dict[str, dict[str, Any]] = {}
        self._logs: dict[str, deque[Event]] = {}
        self._seq = 0
        self._subscribers: set[Subscriber] = set()
        self._closed = False

    # -- recording (the loop's thread; never blocks on a page) ------------------------------------
    def set_run(self, **fields: Any) -> None:
        with self._lock:
            self._run.update(fields)
            self._publish({"type": "run", "run": dict(self._run)})

    def set_tree(self, tree: dict[str, Any], schedules: list[dict[str, Any]]) -> None:
        with self._lock:
            if tree == self._tree and schedules == self._schedules:
                return
            self._tree, self._schedules = tree, schedules
            self._publish({"type": "tree", "tree": tree, "schedules": schedules})

    def set_layout(self, tabs: list[dict[str, Any]]) -> None:
        with self._lock:
            if tabs == self._layout:
                return
            self._layout = tabs
            self._publish({"type": "layout", "layout": tabs})

    def update_work(self, name: str, **fields: Any) -> None:
        with self._lock:
            record = self._works.get(name)
            if record is None:
                record = self._works[name] = {"name": name}
            elif all(record.get(key) == value for key, value in fields.items()):
                return  # nothing new: pages are not woken for it
            record.update(fields)
            self._publish({"type": "work", "work": dict(record)})

    def work(self, name: str) -> dict[str, Any]:
        """A copy of what is known of work `name` (empty if nothing)."""
        with self._lock:
            return dict(self._works.get(name, {}))

    def add_log(self, work: str, stream: str, line: str) -> None:
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f" … ({len(line) - MAX_LINE_CHARS} more characters)"
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "t": time.time(), "work": work, "stream": stream, "line": line}
            buffer = self._logs.get(work)
            if buffer is None:
                buffer = self._logs[work] = deque(maxlen=LOG_LINES_PER_WORK)
            buffer.append(entry)
            self._publish({"type": "log", "log": entry})

    def _publish(self, event: Event) -> None:
        # Called with the lock held. O(pages), no I/O.
        for subscriber in self._subscribers:
            if subscriber.resync:
                pass  # a snapshot is coming anyway and will include this
            elif len(subscriber.events) >= QUEUE_LIMIT:
                subscriber.events.clear()  # too slow: coalesce everything into one snapshot
                subscriber.resync = True
            else:
                subscriber.events.append(event)
            subscriber.wake.set()

    # -- reading (the server's threads) -----------------------------------------------------------
    def snapshot(self) -> Event:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Event:
        logs = list(heapq.merge(*(list(b) for b in self._logs.values()), key=lambda e: e["seq"]))
        return {"type": "snapshot", "run": dict(self._run), "tree": self._tree, "schedules": list(self._schedules),
                "layout": list(self._layout),
                "works": {name: dict(record) for name, record in self._works.items()}, "logs": logs}

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        with self._lock:
            self._subscribers.add(subscriber)
        subscriber.wake.set()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)
            self._gone.notify_all()

    def next_events(self, subscriber: Subscriber, timeout: float) -> Optional[list[Event]]:
        """What `subscriber` has not been sent yet: waits up to `timeout` seconds for something (an empty list:
        nothing came). None once the hub is closed and everything queued was taken."""
        subscriber.wake.wait(timeout)
        with self._lock:
            subscriber.wake.clear()
            if subscriber.resync:
                subscriber.resync = False
                subscriber.events.clear()
                return [self._snapshot()]
            if subscriber.events:
                events = list(subscriber.events)
                subscriber.events.clear()
                return events
            return None if self._closed else []

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self, flush: float = 0.0) -> None:
        """No more events: every stream ends after sending what it has queued. Waits at most `flush` seconds for
        the pages to take it (a page that stalls is not waited for longer)."""
        deadline = time.monotonic() + flush
        with self._lock:
            self._closed = True
            for subscriber in self._subscribers:
                subscriber.wake.set()
            while self._subscribers:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._gone.wait(left)
