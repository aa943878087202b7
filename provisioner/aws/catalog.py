"""Which EC2 instance types serve each compute name, in order of preference, and what they cost.

Prices are on-demand USD per hour in us-east-1 (Linux), for the run summary's cost estimate; other regions
differ by a few percent. AMIs are looked up by name, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float
    gpus: int
    gpu_model: str
    price_per_hour: float
    quota_code: Optional[str] = None  # the Service Quotas code limiting its vCPUs (GPU families only)


G_AND_VT_QUOTA = "L-DB2E81BA"  # Running On-Demand G and VT instances (vCPUs)
P_QUOTA = "L-417A185B"  # Running On-Demand P instances (vCPUs)
QUOTA_NAMES = {G_AND_VT_QUOTA: "Running On-Demand G and VT instances",
               P_QUOTA: "Running On-Demand P instances"}

CATALOG: dict[str, tuple[InstanceType, ...]] = {
    "default": (InstanceType("t3.medium", 2, 4, 0, "", 0.0416), InstanceType("t3a.medium", 2, 4, 0, "", 0.0376)),
    "cpu-small": (InstanceType("t3.medium", 2, 4, 0, "", 0.0416), InstanceType("t3a.medium", 2, 4, 0, "", 0.0376)),
    "cpu": (InstanceType("m6i.large", 2, 8, 0, "", 0.096), InstanceType("m5.large", 2, 8, 0, "", 0.096)),
    "cpu-medium": (InstanceType("m6i.2xlarge", 8, 32, 0, "", 0.384), InstanceType("m5.2xlarge", 8, 32, 0, "", 0.384)),
    "gpu": (InstanceType("g5.xlarge", 4, 16, 1, "NVIDIA A10G", 1.006, G_AND_VT_QUOTA),
            InstanceType("g4dn.xlarge", 4, 16, 1, "NVIDIA T4", 0.526, G_AND_VT_QUOTA)),
    "gpu-fast": (InstanceType("p3.2xlarge", 8, 61, 1, "NVIDIA V100", 3.06, P_QUOTA),),
    "gpu-fast-multi": (InstanceType("p3.8xlarge", 32, 244, 4, "NVIDIA V100", 12.24, P_QUOTA),),
}


@dataclass(frozen=True)
class ImageSpec:
    owner: str
    name_pattern: str
    user: str


GPU_IMAGE = ImageSpec("amazon", "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *", "ubuntu")
CPU_IMAGE = ImageSpec("099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*", "ubuntu")


def types_for(compute_name: str) -> tuple[InstanceType, ...]:
    return CATALOG[compute_name]


def image_for(gpus: int) -> ImageSpec:
    return GPU_IMAGE if gpus else CPU_IMAGE


def table() -> str:
    """The catalog as a markdown table (the README's is generated from this)."""
    lines = ["| compute | instance types (in order) | vCPUs | memory (GiB) | GPUs | $/h (us-east-1) |",
             "|---|---|---|---|---|---|"]
    for name, types in CATALOG.items():
        first = types[0]
        gpus = f"{first.gpus} x {first.gpu_model}" if first.gpus else "0"
        lines.append(f"| {name} | {', '.join(t.name for t in types)} | {first.vcpus} | {first.memory_gib:g} | "
                     f"{gpus} | {first.price_per_hour:.3f} |")
    return "\n".join(lines)
