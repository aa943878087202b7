"""Unit tests of the aws provider's rules that need no cloud: what real AWS does that an emulator forgives."""

from __future__ import annotations

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
