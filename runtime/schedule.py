"""Cron schedules for LightningFlow.schedule(): croniter expressions, evaluated on the orchestrator."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

ALIASES = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "midnight": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
}


def normalize(pattern: Any) -> str:
    """The croniter expression for `pattern`, or ValueError naming it."""
    from croniter import croniter  # here: agents import the model on machines without croniter

    if not isinstance(pattern, str):
        raise ValueError(f"invalid cron pattern {pattern!r}: expected a string such as 'hourly' or '*/5 * * * *'")
    text = pattern.strip()
    key = text.lstrip("@").lower()
    expression = ALIASES.get(key, text)
    if not croniter.is_valid(expression):
        aliases = ", ".join(ALIASES)
        raise ValueError(f"invalid cron pattern {pattern!r}: use a cron expression (5 fields, or 6 with "
                         f"seconds last) or one of {aliases}")
    return expression


class Schedule:
    """One schedule() call site. The loop marks it due; the flow's next call to schedule() consumes it."""

    def __init__(self, expression: str, start_time: Optional[datetime] = None) -> None:
        from croniter import croniter

        base = start_time if start_time is not None else datetime.now()
        if base.tzinfo is not None:
            base = base.astimezone().replace(tzinfo=None)  # the orchestrator's local time
        self.expression = expression
        self._iter = croniter(expression, base)
        self.next_fire: float = self._iter.get_next(datetime).timestamp()
        self.due = False
        self.read = False
        self.fired = 0

    def advance(self, now: float) -> bool:
        """Mark the schedule due if its time has come; events missed meanwhile collapse into one."""
        if now < self.next_fire:
            return False
        while self.next_fire <= now:
            self.next_fire = self._iter.get_next(datetime).timestamp()
        self.due = True
        self.fired += 1
        return True

    def consume(self) -> bool:
        """What schedule() returns: True for the whole tick in which a due schedule is first read."""
        if self.due:
            self.read = True
        return self.due

    def end_tick(self) -> None:
        if self.read:
            self.due = False
            self.read = False
