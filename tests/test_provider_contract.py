"""The provider contract: providers are found by name, declare their own options, and no code outside a provider's
package (and the registry) names one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A provider named as code would name it: a string literal, an import of its package, a comparison.
NAMING = re.compile(r"""["'](aws|ssh|kubernetes)["']|provisioner\.(aws|ssh|kubernetes)\b"""
                    r"""|\bfrom\s+\.+(aws|ssh|kubernetes)\b|\bprovider\s*==""")


def test_no_provider_is_named_outside_its_package_and_the_registry() -> None:
    from lit.provisioner import registry

    providers = {f"provisioner/{name}/" for name in registry.PACKAGES}
    allowed = ("provisioner/registry.py", "stacks/")  # stacks/ is the aws cluster's Pulumi project (Pulumi.yaml)
    offenders = []
    for folder in ("lit", "runtime", "provisioner"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(allowed) or any(relative.startswith(p) for p in providers):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if NAMING.search(code):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_registered_provider_implements_the_contract() -> None:
    from lit.provisioner import registry
    from lit.provisioner.base import Provider

    infos = registry.infos()
    assert set(infos) == set(registry.PACKAGES)
    for name, info in infos.items():
        provider = registry.get_provider(name)
        assert isinstance(provider, Provider) and provider.name == name
        for command in ("create", "update", "delete", "policy"):
            for option in info.options(command):
                assert option.flag.startswith("--") and option.help, option


def test_an_unknown_provider_is_bad_input() -> None:
    from lit.provisioner import registry
    from lit.runtime.errors import BadInput

    with pytest.raises(BadInput, match="unknown provider 'nope'; available: ssh, aws, kubernetes"):
        registry.get_provider("nope")


def test_an_option_of_another_provider_is_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "lit", "create", "cluster", "c1", "--provider", "ssh",
                             "--hosts", "me@10.0.0.5", "--role-arn", "arn:aws:iam::123456789012:role/x"],
                            capture_output=True, text=True, env={"LIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --role-arn is not an option of provider ssh (it is one of: aws)"
    assert not (tmp_path / "clusters").exists() or not any((tmp_path / "clusters").iterdir())


def test_host_scripts_are_modules_sent_as_their_source() -> None:
    """The scripts providers run on hosts before lit's code is there are real, importable modules."""
    import importlib

    from lit.provisioner.hostscript import source

    for module in ("lit.provisioner.ssh.host.probe", "lit.provisioner.ssh.host.lease",
                   "lit.provisioner.ssh.host.stop_agents", "lit.provisioner.aws.host.replace_host_key"):
        importlib.import_module(module)
        compile(source(module), module, "exec")


def test_the_gpu_lease_takes_all_or_nothing(tmp_path: Path) -> None:
    from lit.provisioner.ssh.host.lease import take

    base = str(tmp_path / "leases")
    assert take(base, 2, 1, "run-a/w1") == [0]
    assert take(base, 2, 2, "run-b/w1") == []  # only one left: none taken
    assert sorted(p.name for p in Path(base).iterdir()) == ["0"]
    assert take(base, 2, 1, "run-b/w1") == [1]
    assert (Path(base) / "1" / "owner").read_text() == "run-b/w1"
