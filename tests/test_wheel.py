"""The wheel installs under the `lit` namespace only, holds every module of the source tree (subpackages too),
and runs the hello app and the aws provider's commands from a clean venv; the code bundle sent to hosts holds
every module of the packages hosts need."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, timeout=300)
    (found,) = out.glob("lit-*.whl")
    return found


@pytest.mark.e2e  # the wheel fixture runs pip wheel, which builds in the checkout
def test_wheel_puts_nothing_generic_in_site_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"lit", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for package in ("lit/runtime/agent/__init__.py", "lit/provisioner/__init__.py", "lit/stacks/__init__.py"):
        assert package in names
    assert not any(name.startswith(("runtime/", "stacks/", "provisioner/", "tests/")) for name in names)


# Where each installed package's modules live in the source tree (setup.py finds the packages under these).
SOURCE_ROOTS = {"lit": "lit", "lit/runtime": "runtime", "lit/provisioner": "provisioner", "lit/stacks": "stacks"}


def source_modules() -> set[str]:
    """Every module of the source tree, named as installed (lit/provisioner/aws/provider.py ...)."""
    out = set()
    for installed, folder in SOURCE_ROOTS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts or not all((ROOT / folder / Path(*rel.parts[:i]) / "__init__.py").is_file()
                                                     for i in range(len(rel.parts))):
                continue  # not inside a package
            out.add(f"{installed}/{rel.as_posix()}")
    return out


@pytest.mark.e2e
def test_the_wheel_holds_every_module_of_the_source_tree(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = source_modules()
    assert "lit/provisioner/aws/provider.py" in modules  # a subpackage, which a hand-kept list once missed
    assert modules - names == set()


def test_the_bundle_ships_subpackages(tmp_path: Path) -> None:
    from lit.provisioner.bundle import package_files

    tree = tmp_path / "pkg"
    for rel in ("__init__.py", "a.py", "cli.py", "sub/__init__.py", "sub/deep/__init__.py", "sub/deep/b.py",
                "notapackage/c.py", "skipped/__init__.py"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("")
    got = [arcname for arcname, _ in package_files("pkg", tree, frozenset({"pkg.cli", "pkg.skipped"}))]
    assert got == ["pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/deep/__init__.py",
                   "pkg/sub/deep/b.py"]


def test_the_bundle_holds_every_module_hosts_import(tmp_path: Path) -> None:
    """Unpacked alone, the bundle's lit imports every module of lit.runtime and lit.app (no CLI, provisioner or
    stacks: those run on the operator's machine only)."""
    import tarfile

    from lit.provisioner import bundle

    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("")
    built = bundle.build(app / "app.py")
    with tarfile.open(fileobj=__import__("io").BytesIO(built.data)) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    shipped = {name for name in (p.relative_to(tmp_path / "unpacked" / "_lit").as_posix()
                                 for p in (tmp_path / "unpacked" / "_lit").rglob("*.py"))}
    expected = {m for m in source_modules() if m.startswith(("lit/runtime/", "lit/app/"))}
    assert expected <= shipped
    assert not any(m.startswith(("lit/provisioner/", "lit/stacks/")) or m == "lit/cli.py" for m in shipped)
    code = (f"import sys\nsys.path.insert(0, {str(tmp_path / 'unpacked' / '_lit')!r})\n"
            "import importlib, pkgutil, lit, lit.runtime, lit.app\n"
            "for pkg in (lit.runtime, lit.app):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "print(lit.__file__)\n")
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "unpacked") in result.stdout


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_wheel_in_a_clean_venv_runs_the_hello_app(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=540)
    env = {**os.environ, "LIT_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(env_dir / "bin" / "lit"), "run", str(ROOT / "examples" / "hello_app.py")],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "running code A on a CPU machine" in result.stdout
    assert "running code B on a GPU machine" in result.stdout
    where = subprocess.run([str(python), "-c", "import lit.runtime.agent as a; print(a.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
    assert str(env_dir) in where.stdout


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel with its aws and ssh extras in a fresh venv outside the checkout (no editable install)."""
    env_dir = tmp_path_factory.mktemp("wheel-venv") / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"{wheel}[aws,ssh]"], check=True, timeout=900, cwd=env_dir)
    return env_dir


@pytest.mark.root  # the fake cloud and the SSH test bed, brought up inside the test
@pytest.mark.timeout(1500)
def test_the_wheel_runs_the_seed_app_in_the_fake_cloud_and_on_the_ssh_test_bed(wheel_venv: Path,
                                                                              tmp_path: Path) -> None:
    """From the installed wheel: create an aws cluster in the fake cloud, run the seed's train/analyze app with
    --cloud, delete the cluster; then the same app on an ssh cluster of the test bed. The only path to the
    checkout is the fake cloud's stack engine (tests/, through a folder holding nothing else), so every lit
    module, here and on the hosts, comes from the wheel."""
    from tests.fakecloud import FakeCloud, requirement
    from tests.support import require
    from tests.testbed import TestBed

    require(requirement(), "the fake cloud")
    lit = str(wheel_venv / "bin" / "lit")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "tests").symlink_to(ROOT / "tests")
    app_dir = tmp_path / "seed"
    app_dir.mkdir()
    (app_dir / "app.py").write_text((ROOT / "examples" / "train_analyze_app.py").read_text())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LIT_")) and k != "PYTHONPATH"}

    def run(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([lit, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)
        assert result.returncode == 0, f"lit {' '.join(args)}: {result.stderr[-3000:]}"
        return result

    def ran_the_seed(result: subprocess.CompletedProcess[str]) -> None:
        assert "trained on 1000 samples" in result.stdout and "mean absolute error" in result.stdout, result.stdout

    with FakeCloud.up() as cloud:
        env = {**base, **cloud.env, "PYTHONPATH": str(shim), "LIT_HOME": str(tmp_path / "home-aws")}
        where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import lit; print(lit.__file__)"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
        assert where.stdout.startswith(str(wheel_venv)), where.stdout
        run(env, "create", "cluster", "wheel", "--provider", "aws", "--role-arn",
            "arn:aws:iam::111122223333:role/lit-byoc", "--external-id", "lit-test-external-id")
        ran_the_seed(run(env, "run", str(app_dir / "app.py"), "--cloud", "wheel"))
        run(env, "delete", "cluster", "wheel", "--yes")
        listed = run(env, "list", "clusters")
        assert "wheel" not in listed.stdout
    with TestBed.up(2) as bed:
        env = {**base, "LIT_HOME": str(tmp_path / "home-ssh")}
        hosts = ",".join(f"root@{h.address}" for h in bed.hosts)
        run(env, "create", "cluster", "bed", "--provider", "ssh", "--hosts", hosts, "--key", str(bed.key_path),
            "--known-hosts", str(bed.known_hosts_path), "--gpus", f"{bed.hosts[1].address}=1")
        ran_the_seed(run(env, "run", str(app_dir / "app.py"), "--cloud", "bed"))
        run(env, "delete", "cluster", "bed", "--yes")
