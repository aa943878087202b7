"""Unit tests of the aws provider's rules that need no cloud: what real AWS does that an emulator forgives."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

boto3 = pytest.importorskip("boto3")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-east-1"])
def test_presigned_urls_name_the_buckets_regional_host(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The global host answers a new bucket outside us-east-1 with a 307 that breaks signed requests, and never
    serves opt-in regions (ap-east-1 is one): lit's S3 clients sign for <bucket>.s3.<region>.amazonaws.com."""
    from lit.provisioner.aws.session import s3_config

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x", region_name=region)
    s3 = session.client("s3", config=s3_config())
    for method in ("get_object", "put_object"):
        url = s3.generate_presigned_url(method, Params={"Bucket": "lit-demo-1234", "Key": "runs/r/a"}, ExpiresIn=60)
        parsed = urlparse(url)
        assert parsed.hostname == f"lit-demo-1234.s3.{region}.amazonaws.com"
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in parsed.query


FAKE_PULUMI = """#!/bin/sh
# Stands in for the pulumi CLI: records what lit's Automation API calls give it, answers the version check.
printf '%s|%s|%s\\n' "$1" "${PULUMI_CONFIG_PASSPHRASE-unset}" "${PULUMI_BACKEND_URL-unset}" >> "$FAKE_PULUMI_LOG"
if [ "$1" = version ]; then echo v3.200.0; fi
exit 0
"""


def test_stacks_use_lits_passphrase_over_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads PULUMI_CONFIG_PASSPHRASE before PULUMI_CONFIG_PASSPHRASE_FILE: a passphrase in the user's
    shell must not reach lit's stacks (a later update or destroy from another shell could not decrypt them)."""
    pytest.importorskip("pulumi")
    from lit.provisioner.aws.engine import AutomationEngine

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    log = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the-users-own")
    home = tmp_path / "home"
    engine = AutomationEngine(home)
    engine._stack("demo", {"lit:clusterName": "demo"})
    secret = (home / "pulumi" / "passphrase").read_text().strip()
    assert oct((home / "pulumi" / "passphrase").stat().st_mode & 0o777) == "0o600"
    calls = [line.split("|") for line in log.read_text().splitlines()]
    stack_calls = [c for c in calls if c[0] != "version"]
    assert stack_calls, calls
    for _, passphrase, backend in stack_calls:
        assert passphrase == secret
        assert backend == f"file://{home / 'pulumi'}"
