"""python -m tests.k8s build | up [--dir DIR] | status [--dir DIR] | down [--dir DIR | --all]"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.testbed import TestBedError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the binaries (once per machine) and say where they are")
    for name, text in (("up", "bring a cluster up"), ("status", "show a cluster"), ("down", "take a cluster down")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", help="the cluster's directory (default $LIT_K8S_DIR or /tmp/lit-k8s)")
        if name == "down":
            p.add_argument("--all", action="store_true", help="every cluster whose creator is gone")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from tests.k8s.build import ensure_built

            built = ensure_built()
            how = "already built" if built.cached else f"built in {built.seconds:.0f} s"
            print(f"{built.bin_dir} ({how})")
            return 0
        from tests.k8s import cluster

        return cluster.cli(args.command, args.dir, getattr(args, "all", False))
    except TestBedError as e:
        print(f"python -m tests.k8s {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
