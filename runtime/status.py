"""Work status: a stage, when it was entered, and why."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional


class WorkStageStatus:
    """The stages a work goes through (the names Lightning uses)."""

    NOT_STARTED = "not_started"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


FINAL_STAGES = frozenset({WorkStageStatus.SUCCEEDED, WorkStageStatus.FAILED, WorkStageStatus.STOPPED})


@dataclass(frozen=True)
class WorkStatus:
    stage: str = WorkStageStatus.NOT_STARTED
    timestamp: float = 0.0
    message: Optional[str] = None
    reason: Optional[str] = None

    @classmethod
    def now(cls, stage: str, message: Optional[str] = None, reason: Optional[str] = None) -> WorkStatus:
        return cls(stage, time.time(), message, reason)
