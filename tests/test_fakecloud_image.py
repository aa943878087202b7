"""The fake cloud's OS image (tests/fakecloud/image.py): what a stock cloud image has and no more, cached by a hash of
its recipe, from this machine's Debian mirror.

The checks of the built image need it built (python -m tests.fakecloud.image build, as .ci/run does): skipped
otherwise, but a failure when CI=true.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakecloud import image
from tests.support import require


def test_mirror_is_read_from_apt_sources_in_both_formats(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n"
                      "Suites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://security.example/debian-security\n"
                      "Suites: bookworm-security\nComponents: main\n")
    assert image.debian_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# deb http://commented.example/debian bookworm main\n"
                        "deb [signed-by=/usr/share/keyrings/k.gpg] http://other.example/debian bookworm main\n")
    assert image.debian_mirror([one_line]) == "http://other.example/debian"
    elsewhere = tmp_path / "other.list"
    elsewhere.write_text("deb https://packages.example/apt stable main\n")
    assert image.debian_mirror([elsewhere, tmp_path / "missing.list"]) == image.DEFAULT_MIRROR


def test_the_cache_is_keyed_by_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIT_FAKECLOUD_IMAGES", str(tmp_path))
    first = image.image_path()
    assert first.parent == tmp_path and first.name == f"image-{image.recipe_hash()}"
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "curl"))
    assert image.image_path() != first
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES[:-1])
    monkeypatch.setitem(image.FILES, "/etc/motd", ("hello\n", 0o644))
    assert image.image_path() != first
    assert not image.is_built() and "python -m tests.fakecloud.image build" in (image.missing_reason() or "")
    # the stock image has no pip of its own
    assert not set(image.PACKAGES) & set(image.NOT_IN_THE_IMAGE)


@pytest.mark.e2e  # reads the image that .ci/run builds before the full suite
def test_the_built_image_is_a_stock_cloud_image() -> None:
    require(image.missing_reason(), "the fake cloud's image")
    root = image.image_path()
    installed = {line.split(":", 1)[1].strip() for line in (root / "var/lib/dpkg/status").read_text().splitlines()
                 if line.startswith("Package:")}
    assert set(image.PACKAGES) <= installed
    assert not installed & {"python3-venv", "python3.11-venv", "python3-pip", "systemd", "systemd-sysv"}
    assert (root / "usr/bin/python3").exists() and not (root / "usr/lib/python3.11/ensurepip").exists()
    # no host keys (cloud-init writes the instance's), no default user (cloud-init makes it), no package source
    assert sorted(p.name for p in (root / "etc/ssh").glob("ssh_host_*")) == []
    assert not any(line.startswith("ubuntu:") for line in (root / "etc/passwd").read_text().splitlines())
    assert [line for line in (root / "etc/apt/sources.list").read_text().splitlines() if not line.startswith("#")] \
        == []
    assert list((root / "etc/apt/sources.list.d").glob("*")) == [] and list((root / "var/lib/apt/lists").glob("*")) \
        == []
    assert (root / "etc/cloud/cloud.cfg.d/90_lit_fakecloud.cfg").read_text() == image.CLOUD_CFG
    for path in image.STANDIN_PATHS:  # the image has no init system: only the stand-ins answer these
        assert "stops nothing" in (root / path.lstrip("/")).read_text()


@pytest.mark.root
def test_a_build_is_atomic_and_two_builds_do_not_race(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a stand-in debootstrap: two builds at once run it once; a failed one leaves nothing behind."""
    require(None if os.geteuid() == 0 else "building the image needs root", "the image build")
    bin_dir, runs = tmp_path / "bin", tmp_path / "runs"
    bin_dir.mkdir()
    fake = bin_dir / "debootstrap"
    fake.write_text('#!/bin/sh\necho run >> "$RUNS"\n[ -n "$FAIL" ] && exit 3\nsleep 0.5\n'
                    'mkdir -p "$4/usr/bin" && touch "$4/usr/bin/cloud-init"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("RUNS", str(runs))
    monkeypatch.setenv("LIT_FAKECLOUD_IMAGES", str(tmp_path / "cache"))
    monkeypatch.setattr(image, "_check", lambda root: None)  # no dpkg in the stand-in's tree

    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(image.ImageError, match="debootstrap failed"):
        image.build(mirror="http://mirror.invalid/debian")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".log")) == [".lock"]
    monkeypatch.delenv("FAIL")
    runs.unlink()

    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: image.build(mirror="http://mirror.invalid/debian"), range(2)))
    assert built == [image.image_path()] * 2 and image.is_built()
    assert runs.read_text().split() == ["run"]
    assert not list((tmp_path / "cache").glob(".build-*"))
    assert (image.image_path() / "etc/cloud/cloud.cfg.d/90_lit_fakecloud.cfg").read_text() == image.CLOUD_CFG
