"""Every package under lit/, runtime/, provisioner/ and stacks/ goes into the wheel, found by walking the folders.

The folders stay at the top level of the repository but install under the `lit` namespace, so nothing generic
("runtime", "stacks") lands in site-packages. Packages are found, never listed by hand: a new subpackage (like
lit.provisioner.aws) cannot be left out of the wheel. Everything else is in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_packages, setup

ROOTS = {"lit": "lit", "lit.runtime": "runtime", "lit.provisioner": "provisioner", "lit.stacks": "stacks"}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder) if f"{name}.{sub}" not in ROOTS]
    return sorted(set(found))


setup(packages=packages(), package_dir=dict(ROOTS))
