"""Lightning's BuildConfig: accepted so apps import, ignored with a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lit.runtime.compat import warn_ignored


@dataclass
class BuildConfig:
    requirements: list[str] = field(default_factory=list)
    dockerfile: Optional[str] = None
    image: Optional[str] = None

    def __post_init__(self) -> None:
        warn_ignored("BuildConfig", "works run in lit's environment; remote machines get the app's "
                     "requirements.txt")
