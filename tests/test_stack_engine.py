"""The cloud-neutral stack engine (provisioner/engine.py): which program and project a stack runs, and secrets kept
off the pulumi CLI's command line. No pulumi CLI exists on the test machines: a stand-in records its calls."""

from __future__ import annotations

import contextvars
import importlib
import inspect
from pathlib import Path

import pytest

from lit.provisioner.engine import PROGRAM, PROJECT, StackEngine
from tests.support import fake_pulumi

FAKE_PULUMI = """#!/bin/sh
# Stands in for the pulumi CLI: one line per call, its arguments and the project of the folder it runs in.
project=$(sed -n 's/^name: *//p' Pulumi.yaml 2>/dev/null | head -n 1)
printf '%s\\t%s\\n' "$project" "$*" >> "$FAKE_PULUMI_LOG"
if [ "$1" = version ]; then echo v3.200.0; fi
exit 0
"""
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers:\n- name: lit\n  user: {token: sekrit-7d1f0e3a}\n"
ENGINES = ["lit.provisioner.engine:AutomationEngine", "tests.fakecloud.engine:MotoEngine",
           "tests.k8s.engine:KubeEngine"]


def _fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fake_pulumi(tmp_path, monkeypatch, FAKE_PULUMI)


def _calls(log: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def test_the_default_program_is_the_aws_clusters_in_project_lit(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pulumi")
    from lit.provisioner.engine import AutomationEngine

    assert (PROGRAM, PROJECT) == ("lit.stacks.cluster:program", "lit")
    log = _fake_cli(tmp_path, monkeypatch)
    AutomationEngine(tmp_path / "home")._stack("demo", {"lit:clusterName": "demo", "aws:region": "us-east-1"})
    calls = [c for c in _calls(log) if not c[1].startswith("version")]
    assert calls and all(project == "lit" for project, _ in calls), calls
    (set_all,) = [args for _, args in calls if "config set-all" in args]
    assert "--plaintext lit:clusterName=demo" in set_all and "--plaintext aws:region=us-east-1" in set_all


def test_the_kubernetes_program_runs_in_its_own_project_and_its_kubeconfig_stays_off_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pulumi_kubernetes")
    from lit.provisioner.engine import AutomationEngine
    from lit.stacks import kubernetes

    log = _fake_cli(tmp_path, monkeypatch)
    config = {"lit:clusterName": "demo", "lit:namespace": "ml", "lit:kubeconfig": KUBECONFIG}
    AutomationEngine(tmp_path / "home")._stack("demo", config, kubernetes.PROGRAM, kubernetes.PROJECT,
                                               kubernetes.SECRET_KEYS)
    calls = [c for c in _calls(log) if not c[1].startswith("version")]
    assert calls and all(project == "lit-kubernetes" for project, _ in calls), calls
    (set_all,) = [args for _, args in calls if "config set-all" in args]
    assert "--plaintext lit:namespace=ml" in set_all, set_all
    assert "sekrit" not in log.read_text() and "lit:kubeconfig" not in log.read_text()


def test_a_secret_reaches_the_inline_program_as_config_in_process() -> None:
    pytest.importorskip("pulumi")
    from lit.provisioner.engine import with_config

    seen: dict[str, object] = {}

    def program() -> None:
        from pulumi.runtime import get_config

        seen["kubeconfig"] = get_config("lit:kubeconfig")

    def run() -> None:  # in a copied context: pulumi's config is a context variable, left as it was
        with_config(program, {"lit:kubeconfig": KUBECONFIG})()

    contextvars.copy_context().run(run)
    assert seen == {"kubeconfig": KUBECONFIG}
    assert with_config(program, {}) is program  # no secrets: the program as it is (the aws stack's)


def test_a_missing_program_is_bad_input_naming_the_extras() -> None:
    from lit.provisioner.engine import load_program
    from lit.runtime.errors import BadInput

    with pytest.raises(BadInput, match=r"lit\[kubernetes\]"):
        load_program("lit.stacks.no_such_program:program")
    with pytest.raises(BadInput, match="not a function"):
        load_program("lit.stacks:VPC_CIDR")


@pytest.mark.parametrize("spec", ENGINES)
def test_every_engine_takes_the_program_and_project(spec: str) -> None:
    """The provider passes program= and project= (and secret_keys= to up and destroy) to whatever engine
    LIT_STACK_ENGINE names; one that did not take them would fail only when a Kubernetes cluster is made."""
    module, _, attr = spec.partition(":")
    try:
        engine = getattr(importlib.import_module(module), attr)
    except ImportError as exc:  # a test engine's SDK is an extra
        pytest.skip(f"{spec}: {exc}")
    base = {name: inspect.signature(getattr(StackEngine, name)) for name in ("up", "destroy", "outputs")}
    for name, expected in base.items():
        params = inspect.signature(getattr(engine, name)).parameters
        for param in expected.parameters.values():
            if param.name == "self":
                continue
            assert param.name in params, f"{spec}.{name} lacks {param.name}"
            if param.default is not inspect.Parameter.empty:
                assert params[param.name].default == param.default, f"{spec}.{name}({param.name}=...)"
