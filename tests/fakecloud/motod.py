"""The fake cloud's moto process: moto's server, plus the reconciler (instances.py) as a thread of it.

    python -m tests.fakecloud.motod --bed-dir DIR --instances-dir DIR --log FILE [--guard CIDR] [--boot S] \
        -- -H ADDRESS -p PORT

The reconciler reads moto's backends in this process (all accounts and regions) and drives the test bed's
hosts; killing this process stops both (FakeCloud.down then takes the instances' hosts down from their record).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from .amis import CANONICAL_OWNER


def _canonical_images_have_no_alias() -> None:
    """moto names every image of MOTO_AMIS_PATH's file "amazon"; on AWS Canonical's images have no alias."""
    from moto.ec2.models.amis import AmiBackend

    load = AmiBackend._load_amis

    def _load_amis(self: AmiBackend) -> None:
        load(self)
        for ami in self.amis.values():
            if ami.owner_id == CANONICAL_OWNER:
                ami.owner_alias = None

    AmiBackend._load_amis = _load_amis  # type: ignore[method-assign]


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.fakecloud.motod")
    ap.add_argument("--bed-dir", required=True, help="the fake cloud's test bed (its bridge)")
    ap.add_argument("--instances-dir", required=True, help="where the instances' hosts are recorded")
    ap.add_argument("--log", required=True, help="the reconciler's log")
    ap.add_argument("--guard", default=None, help="a CIDR no packet may leave this machine for (lit's VPCs)")
    ap.add_argument("--boot", type=float, default=0.0, help="seconds an instance takes to boot (default 0)")
    ap.add_argument("moto_args", nargs=argparse.REMAINDER, help="-- then moto.server's arguments")
    args = ap.parse_args(argv)
    moto_args = [a for a in args.moto_args if a != "--"] if args.moto_args[:1] == ["--"] else args.moto_args
    _canonical_images_have_no_alias()
    from moto import server

    from .instances import start

    start(Path(args.bed_dir), Path(args.instances_dir), Path(args.log), guard=args.guard, boot=args.boot)
    server.main(list(moto_args))


if __name__ == "__main__":
    main(sys.argv[1:])
