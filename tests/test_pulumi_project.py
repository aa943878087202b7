"""Pulumi.yaml passes the Pulumi CLI's own project validation, and declares every `lit:` key the program reads.

The rules are those of the CLI's `Project.Validate` (pulumi/pulumi sdk/go/common/workspace/project.go): a key is
in the project's namespace when it has no ':' or starts with '<project name>:'; such a key may declare a type
(an array needs `items`) and a default of that type; any other key (e.g. `aws:region`) may declare neither a type
nor a default and must give a `value`; no key has both a default and a value. No Pulumi CLI exists on the test
machines, so this checks the file by those rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}


def validate(project: dict[str, Any]) -> list[str]:
    """What the Pulumi CLI would refuse in a project file, one message per problem."""
    problems = []
    name = project.get("name") or ""
    if not name:
        problems.append("project is missing a 'name' attribute")
    runtime = project.get("runtime")
    if not (runtime if isinstance(runtime, str) else (runtime or {}).get("name")):
        problems.append("project is missing a 'runtime' attribute")
    for key, declared in (project.get("config") or {}).items():
        declared = declared if isinstance(declared, dict) else {"value": declared}
        if "default" in declared and "value" in declared:
            problems.append(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        typed = "type" in declared
        if ":" not in key or key.startswith(f"{name}:"):
            if typed and declared["type"] == "array" and "items" not in declared:
                problems.append(f"'{key}' declares an array but does not specify 'items'")
            if typed and "default" in declared and not isinstance(declared["default"], TYPES[declared["type"]]):
                problems.append(f"the default of '{key}' is not of the expected type '{declared['type']}'")
        else:
            if typed:
                problems.append(f"Configuration key '{key}' is not namespaced by the project and should not "
                                "define a type")
            if "default" in declared:
                problems.append(f"Configuration key '{key}' is not namespaced by the project and should not "
                                "define a default value")
            if "value" not in declared:
                problems.append(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return problems


def test_the_validator_refuses_what_the_cli_refuses() -> None:
    # The project file as it was: aws:region with a type (the CLI's own test, TestNamespacedProjectConfig...).
    bad = {"name": "lit", "runtime": "python",
           "config": {"aws:region": {"type": "string", "description": "The AWS region"}}}
    assert any("should not define a type" in p for p in validate(bad))
    assert any("must provide an attribute 'value'" in p for p in validate(bad))
    assert validate({"name": "lit", "runtime": "python", "config": {"aws:region": {"value": "us-east-1"}}}) == []
    assert validate({"name": "lit", "runtime": "python",
                     "config": {"lit:n": {"type": "string", "default": 3}}})  # default of the wrong type


def test_pulumi_yaml_is_a_valid_project() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert validate(project) == []
    assert project["main"] == "stacks/"
    assert (ROOT / "stacks" / "__main__.py").is_file()


def test_pulumi_yaml_declares_every_lit_key_the_program_reads() -> None:
    source = (ROOT / "stacks" / "cluster.py").read_text()
    read = set(re.findall(r'config\.(?:require|get)\w*\("(\w+)"\)', source))
    assert read, "the program reads no lit: key?"
    declared = {key.split(":", 1)[1] for key in yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
                if key.startswith("lit:")}
    assert read <= declared
