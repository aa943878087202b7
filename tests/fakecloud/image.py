"""The OS image the fake cloud's instances boot: a Debian bookworm root filesystem made by ``debootstrap`` from this
machine's Debian mirror, with what a stock cloud image has and no more.

    python -m tests.fakecloud.image build    # build it unless it is cached; prints its path
    python -m tests.fakecloud.image path     # its path, or exit status 1 if it is not built
    python -m tests.fakecloud.image prune    # remove the images of other recipes that no instance runs on

Packages: python3 (Debian's 3.11, *without* ensurepip/venv's pip: no python3-venv, no python3-pip, as on a stock
image), openssh-server, sudo, cloud-init, iproute2 and procps (debootstrap's ``minbase`` below them). Baked in on
top, as a cloud image's build does:

* ``/etc/cloud/cloud.cfg.d/90_lit_fakecloud.cfg`` (CLOUD_CFG): the NoCloud datasource only (the fake cloud writes a
  seed directory into each instance), Ubuntu's default user ``ubuntu`` (as Ubuntu's own cloud.cfg has it: passwordless
  sudo, /bin/bash, locked password), no network configuration (the test bed sets the address), the instance's
  name in /etc/hosts; the modules of each stage are Debian's stock lists.
* no SSH host keys (openssh-server's install made some; images ship none: cloud-init writes the instance's), no
  machine id, ``localhost`` as hostname (cloud-init sets the instance's), no DNS resolver.
* apt without any source (sources.list has none, the package lists are gone): the instances have no route out and
  nothing installs packages at boot.
* stand-ins at ``shutdown``, ``poweroff``, ``halt``, ``reboot``, ``telinit`` and ``systemctl`` (the image has no
  init system, so none of them exists otherwise): they append the command to /run/lit-testbed/events, which the
  fake cloud turns into StopInstances (machine.py binds them over these paths again at each boot).

The image is cached in $LIT_FAKECLOUD_IMAGES or /var/cache/lit-fakecloud, as ``image-<hash of the recipe>``: a
change of the recipe (RECIPE_VERSION, SUITE, PACKAGES, the files above) makes a new one. A build happens in a
temporary directory next to it, renamed into place once complete, under a lock (two builds do not race). A cold
build takes about a minute here (57-81 s; debootstrap downloads ~90 MB). Images of older recipes stay until
``prune`` (which keeps any that a running instance has as the lower layer of its disk).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from tests.testbed import _STANDIN, STANDIN_NAMES, file_lock

RECIPE_VERSION = 1
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# python3-cffi-backend: debootstrap's resolver does not follow virtual packages (python3-cryptography, which
# cloud-init needs through python3-oauthlib, depends on python3-cffi-backend-api-min, which it provides).
PACKAGES = ("python3", "openssh-server", "sudo", "cloud-init", "iproute2", "procps", "python3-cffi-backend")
NOT_IN_THE_IMAGE = ("python3-venv", "python3.11-venv", "python3-pip")  # checked after the build

# Documents this follows: cloud-init's "NoCloud" datasource page (seed directory /var/lib/cloud/seed/nocloud with
# user-data and meta-data; datasource_list), "Base configuration" / "Boot stages" (cloud.cfg.d merged over
# cloud.cfg, modules lists per stage), Ubuntu's cloud.cfg (system_info.default_user) and the module reference
# (cc_ssh: ssh_keys, ssh_deletekeys, ssh_genkeytypes; cc_users_groups: default_user).
CLOUD_CFG = """\
# lit fake cloud: what makes this Debian root filesystem a cloud image for the fake cloud (tests/fakecloud/image.py)

# The fake cloud gives each instance a NoCloud seed directory (/var/lib/cloud/seed/nocloud/{user-data,meta-data});
# no other datasource is probed (they would wait for metadata services that do not exist offline).
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: null  # the seed is a directory: no blkid scan for a "cidata" disk (there are no disks)

# Ubuntu's default user, as Ubuntu's cloud.cfg has it (the fake cloud's AMIs are Ubuntu's).
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, audio, cdrom, dialout, dip, floppy, lxd, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash

# The test bed configures eth0 (the instance's private address, on-link routes only) before cloud-init runs, as
# a cloud's DHCP would; cloud-init neither writes nor brings up a network configuration (there is no DHCP server).
network:
  config: disabled
disable_network_activation: true
# The instance's name in /etc/hosts (cloud-init's hosts template): there is no DNS server to resolve it, as the
# VPC's resolver does on EC2 (sudo looks it up).
manage_etc_hosts: true

# The modules of each stage are Debian's stock lists (cloud.cfg): the ones that find nothing to do here (no disk
# to grow, no package mirror, no console) skip or warn in cloud-init.log. Leaving out those that make no sense
# offline (growpart, resizefs, disk_setup, mounts, ca-certs, rsyslog, snap, apt-*, ntp, puppet, chef, ...) was
# measured and gains nothing: each stage takes 0.35-0.65 s here either way, almost all of it Python starting
# cloud-init and importing its modules.
"""

HOSTS = """\
127.0.0.1\tlocalhost
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
"""

STANDIN_PATHS = tuple(f"/usr/bin/{n}" if n == "systemctl" else f"/usr/sbin/{n}" for n in STANDIN_NAMES)

# path in the image -> (text, mode)
FILES: dict[str, tuple[str, int]] = {
    "/etc/cloud/cloud.cfg.d/90_lit_fakecloud.cfg": (CLOUD_CFG, 0o644),
    "/etc/apt/sources.list": ("# lit fake cloud: no package source (the instances have no route out)\n", 0o644),
    "/etc/hostname": ("localhost\n", 0o644),
    # the system locale of Ubuntu's and Debian's cloud images (cloud-init's locale module keeps it, generating none)
    "/etc/default/locale": ("LANG=C.UTF-8\n", 0o644),
    "/etc/hosts": (HOSTS, 0o644),
    "/etc/resolv.conf": ("", 0o644),
    "/etc/machine-id": ("", 0o444),
    **{p: (_STANDIN, 0o755) for p in STANDIN_PATHS},
}
# removed from the image (globs, relative to its root)
REMOVED = ("etc/ssh/ssh_host_*", "etc/apt/sources.list.d/*", "var/lib/apt/lists/*", "var/cache/apt/*.bin",
           "var/cache/apt/archives/*.deb", "var/lib/dbus/machine-id", "var/log/*.log", "var/lib/cloud/*")


class ImageError(RuntimeError):
    """The image could not be built."""


def recipe() -> dict[str, object]:
    return {"version": RECIPE_VERSION, "suite": SUITE, "packages": list(PACKAGES), "files": FILES,
            "removed": list(REMOVED), "variant": "minbase"}


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("LIT_FAKECLOUD_IMAGES") or "/var/cache/lit-fakecloud")


def image_path() -> Path:
    """Where the image of the current recipe is (or will be once built)."""
    return cache_dir() / f"image-{recipe_hash()}"


def is_built(path: Optional[Path] = None) -> bool:
    return ((path or image_path()) / "usr/bin/cloud-init").is_file()


def missing_reason() -> Optional[str]:
    """Why instances cannot boot here (no image built), or None."""
    if is_built():
        return None
    return f"the fake cloud's OS image is not built ({image_path()}): run python -m tests.fakecloud.image build"


def debian_mirror(paths: Sequence[Path] = ()) -> str:
    """This machine's Debian mirror (the first deb.* URI for the suite in /etc/apt/sources.list*), else
    deb.debian.org."""
    files = list(paths) or [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    found: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822: paragraphs of Types/URIs/Suites
            for para in text.split("\n\n"):
                fields = {}
                for line in para.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith((" ", "#")):
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []):
                    found += fields.get("uris", [])
        else:
            for line in text.splitlines():
                words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    found.append(words[1])
    return next((u.rstrip("/") for u in found if u.startswith(("http://", "https://"))), DEFAULT_MIRROR)


def _lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(directory / ".lock")


def _bake(root: Path) -> None:
    for pattern in REMOVED:
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    for rel, (text, mode) in FILES.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(text)
        os.chmod(path, mode)
    (root / "var/lib/cloud").mkdir(parents=True, exist_ok=True)


def _check(root: Path) -> None:
    listed = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}\\n"], capture_output=True,
                            text=True, check=True).stdout.split()
    if unwanted := sorted(set(listed) & set(NOT_IN_THE_IMAGE)):
        raise ImageError(f"the image has {unwanted}, which a stock cloud image does not")
    missing = sorted(set(PACKAGES) - set(listed))
    if missing:
        raise ImageError(f"the image lacks {missing}")
    if (root / "usr/lib/python3.11/ensurepip").exists():
        raise ImageError("the image's python3 has ensurepip")


def build(log: Optional[Path] = None, mirror: Optional[str] = None) -> Path:
    """The image of the current recipe, built first unless cached."""
    target = image_path()
    if is_built(target):
        return target
    if os.geteuid() != 0:
        raise ImageError("building the fake cloud's image needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap not found (run: bash tests/testbed_setup.sh)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent):
        if is_built(target):
            return target
        tmp = target.parent / f".build-{target.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in target.parent.glob(f".build-{target.name}-*"):  # a build killed midway (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        mirror = mirror or debian_mirror()
        log = log or target.parent / f"{target.name}.build.log"
        t0 = time.monotonic()
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror]
        with open(log, "w") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            detail = (tmp / "debootstrap/debootstrap.log")
            tail = detail.read_text(errors="replace")[-3000:] if detail.exists() else log.read_text()[-3000:]
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImageError(f"debootstrap failed ({done.returncode}), see {log}:\n{tail}")
        try:
            _check(tmp)
            _bake(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / "etc/lit-fakecloud-image").write_text(json.dumps({**recipe(), "files": sorted(FILES),
                                                                  "mirror": mirror}, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
        with open(log, "a") as out:
            out.write(f"built {target} in {time.monotonic() - t0:.0f}s\n")
    return target


def _in_use() -> set[str]:
    """Lower layers of the overlays mounted now, in any mount namespace (running instances' disks)."""
    used: set[str] = set()
    for mountinfo in Path("/proc").glob("[0-9]*/mountinfo"):
        with contextlib.suppress(OSError):
            for line in mountinfo.read_text().splitlines():
                if " - overlay " in line:
                    for option in line.rsplit(" ", 1)[-1].split(","):
                        if option.startswith("lowerdir="):
                            used.update(option[len("lowerdir="):].split(":"))
    return used


def prune() -> list[Path]:
    """Remove the images of other recipes (and builds left behind) that no running instance uses; the removed."""
    current, removed = image_path(), []
    if not current.parent.is_dir():
        return removed
    with _lock(current.parent):
        used = _in_use()
        for path in sorted(current.parent.glob("image-*")) + sorted(current.parent.glob(".build-*")):
            if path == current or not path.is_dir() or str(path) in used:
                continue
            shutil.rmtree(path)
            path.with_name(path.name + ".build.log").unlink(missing_ok=True)
            removed.append(path)
    return removed


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fakecloud.image", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["build", "path", "prune"])
    args = ap.parse_args(argv)
    if args.command == "path":
        print(image_path())
        return 0 if is_built() else 1
    if args.command == "prune":
        for path in prune():
            print(f"removed {path}")
        return 0
    t0 = time.monotonic()
    cached = is_built()
    try:
        path = build()
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    print(f"{'cached' if cached else 'built'} in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
