"""CloudCompute: which machine a work needs, by name, as in Lightning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

from .compat import warn_ignored


class MachineSpec(NamedTuple):
    vcpus: int
    memory_gib: int
    gpus: int
    accelerator: str


# The one table of compute names. Providers map each name to machine types that offer at least this much.
COMPUTE_NAMES: dict[str, MachineSpec] = {
    "default": MachineSpec(2, 4, 0, "none"),
    "cpu-small": MachineSpec(2, 4, 0, "none"),
    "cpu": MachineSpec(2, 8, 0, "none"),
    "cpu-medium": MachineSpec(8, 32, 0, "none"),
    "gpu": MachineSpec(4, 16, 1, "NVIDIA T4 / A10G class"),
    "gpu-fast": MachineSpec(8, 61, 1, "NVIDIA L40S / A100 class"),
    "gpu-fast-multi": MachineSpec(32, 244, 4, "4x NVIDIA L40S / A100 class"),
}

_IGNORED = ("shm_size", "mounts", "wait_timeout", "colocation_group_id")


@dataclass(frozen=True)
class CloudCompute:
    """The machine a work runs on. `CloudCompute("gpu")` asks for one GPU; see COMPUTE_NAMES."""

    name: str = "default"
    disk_size: int = 0
    idle_timeout: Optional[float] = None
    interruptible: bool = False
    clusters: Optional[tuple[str, ...]] = None
    # Lightning arguments that are accepted and ignored (with a one-time warning).
    shm_size: Optional[int] = field(default=None, repr=False, compare=False)
    mounts: Any = field(default=None, repr=False, compare=False)
    wait_timeout: Optional[int] = field(default=None, repr=False, compare=False)
    colocation_group_id: Optional[str] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"CloudCompute name must be a string, got {self.name!r}")
        name = self.name.lower()
        if name not in COMPUTE_NAMES:
            valid = ", ".join(COMPUTE_NAMES)
            raise ValueError(f"Unknown CloudCompute name {self.name!r}. Valid names: {valid}.")
        object.__setattr__(self, "name", name)
        if not isinstance(self.disk_size, int) or self.disk_size < 0:
            raise ValueError(f"CloudCompute disk_size must be a non-negative int (GB), got {self.disk_size!r}")
        if self.idle_timeout is not None and (
            not isinstance(self.idle_timeout, (int, float)) or self.idle_timeout < 0
        ):
            raise ValueError(f"CloudCompute idle_timeout must be seconds >= 0, got {self.idle_timeout!r}")
        if self.clusters is not None:
            clusters = (self.clusters,) if isinstance(self.clusters, str) else tuple(self.clusters)
            if not clusters or not all(isinstance(c, str) and c for c in clusters):
                raise ValueError(f"CloudCompute clusters must be a list of cluster names, got {self.clusters!r}")
            object.__setattr__(self, "clusters", clusters)
        for arg in _IGNORED:
            if getattr(self, arg) is not None:
                warn_ignored(f"CloudCompute({arg}=...)")
        if self.interruptible:
            warn_ignored("CloudCompute(interruptible=...)", "no provider starts spot or preemptible machines yet, so "
                         "the work runs on an on-demand machine")

    @property
    def spec(self) -> MachineSpec:
        return COMPUTE_NAMES[self.name]

    @property
    def gpus(self) -> int:
        return self.spec.gpus

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "disk_size": self.disk_size,
            "idle_timeout": self.idle_timeout,
            "interruptible": self.interruptible,
            "clusters": list(self.clusters) if self.clusters is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CloudCompute:
        return cls(**data)
