"""python -m tests.fakecloud up|down|status|env [--dir DIR]   (DIR: $LIT_FAKECLOUD_DIR or /tmp/lit-fakecloud)

`up` starts moto on a test bed's bridge in the background and prints the export lines that point lit at it:

    eval "$(python -m tests.fakecloud up)"

(first building the instances' OS image if it is not cached: image.py, about a minute.)
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from . import image
from .aws import FakeCloudError
from .server import STATE_FILE, FakeCloud, default_dir


def exports(cloud: FakeCloud) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in cloud.env.items())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fakecloud", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, text in (("up", "start moto on a test bridge, print export lines"),
                       ("down", "stop moto and remove the bridge"),
                       ("status", "show the recorded fake cloud"),
                       ("env", "print the export lines again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", default=None, help="state directory (default $LIT_FAKECLOUD_DIR or /tmp/lit-fakecloud)")
    up = sub.choices["up"]
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--boot", type=float, default=0.0, help="seconds each instance takes to boot (default 0)")
    args = ap.parse_args(argv)
    d = Path(args.dir) if args.dir else default_dir()
    try:
        if args.cmd == "up":
            t0 = time.monotonic()
            if not image.is_built():
                print(f"# building the instances' OS image in {image.image_path()} (debootstrap, about a minute)",
                      file=sys.stderr)
                image.build()
            cloud = FakeCloud.up(d, region=args.region, auto_down=False, boot=args.boot)
            sys.stdout.write(exports(cloud))
            print(f"# fake cloud: moto on {cloud.endpoint} (pid {cloud.moto_pid}), up in {time.monotonic() - t0:.1f}s;"
                  f" take it down: python -m tests.fakecloud down --dir {d}", file=sys.stderr)
        elif args.cmd == "down":
            if FakeCloud.down_dir(d):
                print(f"fake cloud in {d} is down", file=sys.stderr)
            else:
                print(f"no fake cloud recorded in {d}", file=sys.stderr)
        else:
            if not (d / STATE_FILE).exists():
                print(f"no fake cloud recorded in {d}", file=sys.stderr)
                return 1
            cloud = FakeCloud.load(d)
            if args.cmd == "env":
                sys.stdout.write(exports(cloud))
            else:
                print(f"fake cloud in {d}: moto on {cloud.endpoint}, pid {cloud.moto_pid} "
                      f"({'running' if cloud.moto_running() else 'NOT running'}), test bed in {cloud.bed_dir}; "
                      "the instances' reconciler is a thread of moto's process")
                for instance_id, host in sorted(cloud.hosts_for_instances().items()):
                    print(f"  instance {instance_id}: host {host.address} (netns {host.netns}), "
                          f"{'powered on' if host.powered_on else 'powered off'}, login ubuntu (sudo)")
                print(f"reconciler log: {cloud.reconciler_log_path}")
    except (FakeCloudError, image.ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
