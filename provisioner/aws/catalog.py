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
    # P3 (V100) is not among the types the Deep Learning Base AMIs support (their release notes list G4dn, G5,
    # G6, Gr6, G6e, P4d/P4de, P5...): the fast single and multi-GPU names use G6e (NVIDIA L40S, 48 GB).
    "gpu-fast": (InstanceType("g6e.2xlarge", 8, 64, 1, "NVIDIA L40S", 2.242, G_AND_VT_QUOTA),),
    "gpu-fast-multi": (InstanceType("g6e.12xlarge", 48, 384, 4, "NVIDIA L40S", 10.493, G_AND_VT_QUOTA),),
}


@dataclass(frozen=True)
class ImageSpec:
    owner: str
    name_patterns: tuple[str, ...]  # in order of preference: the newest image of the first pattern that has any
    user: str
    families: Optional[frozenset[str]]  # the instance families the image supports (None: any non-GPU x86_64 type)
    source: str  # where that list comes from


# "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)" release notes (AWS DLAMI developer guide):
# supported_ec2_instances G4dn, G5, G6, Gr6, G6e, P4d, P4de, P5, P5e, P5en. P3 and G3 are not supported.
GPU_IMAGE = ImageSpec("amazon", ("Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",), "ubuntu",
                      frozenset({"g4dn", "g5", "g6", "gr6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en"}),
                      "AWS DLAMI release notes, Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)")
# Canonical's Ubuntu 22.04 server images: gp3 root volumes since 2023 ("hvm-ssd-gp3"); older regions and
# mirrors of the catalogue may only have the gp2 series ("hvm-ssd"), the fallback.
CPU_IMAGE = ImageSpec("099720109477", ("ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*",
                                       "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"), "ubuntu",
                      None, "Ubuntu on AWS: any x86_64 instance type (no GPU driver)")


def family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def types_for(compute_name: str) -> tuple[InstanceType, ...]:
    return CATALOG[compute_name]


def image_for(itype: InstanceType) -> ImageSpec:
    """The image an instance type is launched on; raises ValueError if that image does not support the type."""
    spec = GPU_IMAGE if itype.gpus else CPU_IMAGE
    if spec.families is not None and family(itype.name) not in spec.families:
        raise ValueError(f"{itype.name} is not supported by the image {spec.name_patterns[0]!r} "
                         f"({spec.source})")
    return spec


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
