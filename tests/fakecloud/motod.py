"""The fake cloud's moto process: moto's server, plus the reconciler (instances.py) as a thread of it.

    python -m tests.fakecloud.motod --bed-dir DIR --instances-dir DIR --log FILE [--guard CIDR] [--boot S] \
        [--public CIDR] [--credentials FILE] -- -H ADDRESS -p PORT

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

# The range that plays the internet: moto's public addresses (an instance's, an Elastic IP's) come from it instead
# of real public ranges, so no test ever sends a packet to anybody's machine. Not the test bed's 10.213.0.0/16, lit's
# VPC (lit.stacks.VPC_CIDR, 10.77.0.0/16) or moto's default VPC (172.31.0.0/16); the reconciler refuses it if this
# machine uses it already.
PUBLIC_CIDR = "10.99.0.0/16"


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


def _public_addresses_from(cidr: str) -> None:
    """moto makes public addresses up (54.214.x.y for an instance in a subnet with MapPublicIpOnLaunch, 127.x.y.z
    for an Elastic IP): take them from `cidr` instead, each handed out once in the life of this process."""
    import ipaddress
    import random
    import threading

    from moto.ec2 import utils
    from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces

    net = ipaddress.ip_network(cidr)
    issued: set[str] = set()
    lock = threading.Lock()

    def random_public_ip() -> str:
        with lock:
            for _ in range(10_000):
                address = str(net.network_address + random.randint(1, net.num_addresses - 2))
                if address not in issued:
                    issued.add(address)
                    return address
        raise RuntimeError(f"no public address left in {cidr}")

    utils.random_public_ip = random_public_ip
    elastic_network_interfaces.random_public_ip = random_public_ip  # imported by name there
    elastic_ip_addresses.random_ip = random_public_ip


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.fakecloud.motod")
    ap.add_argument("--bed-dir", required=True, help="the fake cloud's test bed (its bridge)")
    ap.add_argument("--instances-dir", required=True, help="where the instances' hosts are recorded")
    ap.add_argument("--log", required=True, help="the reconciler's log")
    ap.add_argument("--guard", default=None, help="a CIDR no packet may leave this machine for (lit's VPCs)")
    ap.add_argument("--boot", type=float, default=0.0, help="seconds an instance takes to boot (default 0)")
    ap.add_argument("--public", default=PUBLIC_CIDR, help=f"the range of public addresses (default {PUBLIC_CIDR})")
    ap.add_argument("--credentials", default=None, help="enforce IAM (moto's authorization, closer to IAM: "
                    "authz.py) and write the operator's and admin's access keys to this file")
    ap.add_argument("moto_args", nargs=argparse.REMAINDER, help="-- then moto.server's arguments")
    args = ap.parse_args(argv)
    moto_args = [a for a in args.moto_args if a != "--"] if args.moto_args[:1] == ["--"] else args.moto_args
    _canonical_images_have_no_alias()
    _public_addresses_from(args.public)
    if args.credentials:  # INITIAL_NO_AUTH_ACTION_COUNT=0 in this process's environment turns moto's checks on
        from .authz import bootstrap, closer_to_iam

        closer_to_iam()
        bootstrap(Path(args.credentials))
    from moto import server

    from .instances import start

    start(Path(args.bed_dir), Path(args.instances_dir), Path(args.log), guard=args.guard, boot=args.boot,
          public=args.public)
    server.main(list(moto_args))


if __name__ == "__main__":
    main(sys.argv[1:])
