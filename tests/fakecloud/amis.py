"""The images the fake cloud offers: moto's own, plus the Ubuntu images lit looks up by name (newest first).

moto reads its images from MOTO_AMIS_PATH when that is set (instead of its bundled list) into every account
and region; `write_amis_file` writes moto's bundled list for the region plus IMAGES there. describe_images
matches Owners against an image's owner id or alias, so lit's lookups work as on AWS:

    describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values":
        ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"]}])
    describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values":
        ["ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*"]}])

(moto gives every image of that file the owner alias "amazon"; the fake cloud's moto process takes it off
Canonical's images again, see motod.py.)
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

AMAZON_DLAMI_OWNER = "898082745236"  # the account AWS publishes the Deep Learning AMIs from (alias "amazon")
CANONICAL_OWNER = "099720109477"

GPU_IMAGE_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) {date}"
CPU_IMAGE_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-{date}"
NEWEST, OLDER = "20261101", "20260915"


def _image(ami_id: str, name: str, owner: str, date: str, description: str) -> dict[str, Any]:
    return {"ami_id": ami_id, "state": "available", "public": True, "owner_id": owner,
            "image_location": f"{owner}/{name}", "sriov": "simple", "root_device_type": "ebs",
            "root_device_name": "/dev/sda1", "description": description, "image_type": "machine",
            "platform": None, "architecture": "x86_64", "name": name, "virtualization_type": "hvm",
            "hypervisor": "xen", "creation_date": f"{date[:4]}-{date[4:6]}-{date[6:]}T00:00:00.000Z"}


IMAGES: list[dict[str, Any]] = [
    _image("ami-0f1a7c0000000d101", GPU_IMAGE_NAME.format(date=NEWEST), AMAZON_DLAMI_OWNER, NEWEST,
           "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4, P5. NVIDIA driver, CUDA, Docker (fake cloud)"),
    _image("ami-0f1a7c0000000d100", GPU_IMAGE_NAME.format(date=OLDER), AMAZON_DLAMI_OWNER, OLDER,
           "Supported EC2 instances: G4dn, G5, G6, Gr6, G6e, P4, P5. NVIDIA driver, CUDA, Docker (fake cloud)"),
    _image("ami-0f1a7c0000000cb01", CPU_IMAGE_NAME.format(date=NEWEST), CANONICAL_OWNER, NEWEST,
           f"Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on {NEWEST} (fake cloud)"),
    _image("ami-0f1a7c0000000cb00", CPU_IMAGE_NAME.format(date=OLDER), CANONICAL_OWNER, OLDER,
           f"Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on {OLDER} (fake cloud)"),
]
GPU_IMAGE_ID, CPU_IMAGE_ID = IMAGES[0]["ami_id"], IMAGES[2]["ami_id"]


def _moto_resource(path: str) -> list[dict[str, Any]]:
    try:
        data = (resources.files("moto") / path).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        return []
    return list(json.loads(gzip.decompress(data) if path.endswith(".gz") else data))


def write_amis_file(path: Path, region: str) -> Path:
    """moto's bundled images (its general list and the region's latest ones) plus IMAGES, as a JSON file."""
    images: dict[str, dict[str, Any]] = {}
    for resource in ("ec2/resources/amis.json.gz", f"ec2/resources/latest_amis/{region}.json.gz",
                     f"ec2/resources/ecs/optimized_amis/{region}.json.gz"):
        for image in _moto_resource(resource):
            images[image["ami_id"]] = image
    for image in IMAGES:
        images[image["ami_id"]] = image
    path.write_text(json.dumps(list(images.values())))
    return path
