"""boto3 against the fake cloud only: endpoint checks and assumed-role sessions.

Every client made here talks to the moto endpoint (an explicit endpoint_url, no proxies from the
environment): a private or loopback address, never anything else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
from typing import Any, Optional
from urllib.parse import urlparse

DUMMY_KEY = "testing"
DEFAULT_REGION = "us-east-1"
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(?P<account>\d{12}):role/(?P<name>[\w+=,.@/-]{1,512})$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


class FakeCloudError(RuntimeError):
    """The fake cloud could not do what was asked (clear message, no traceback needed)."""


def check_endpoint(endpoint: Optional[str]) -> str:
    """The endpoint URL if it points at a private or loopback address; FakeCloudError otherwise."""
    if not endpoint:
        raise FakeCloudError("AWS_ENDPOINT_URL is not set: the fake cloud's engine only talks to moto "
                             "(run `python -m tests.fakecloud up` and eval its export lines)")
    parsed = urlparse(endpoint)
    host = parsed.hostname or ""
    if parsed.scheme != "http" or not parsed.port:
        raise FakeCloudError(f"AWS_ENDPOINT_URL={endpoint}: expected http://<private address>:<port>")
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise FakeCloudError(f"AWS_ENDPOINT_URL={endpoint}: the fake cloud needs an IP address") from None
        if not (address.is_private or address.is_loopback):
            raise FakeCloudError(f"AWS_ENDPOINT_URL={endpoint}: not a private address; refusing to send AWS calls")
    return endpoint.rstrip("/")


def _config() -> Any:
    from botocore.config import Config

    # proxies={} : never route to moto through an HTTP(S)_PROXY from the environment.
    return Config(proxies={}, retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)


class Endpoint:
    """Clients of one boto3 session, all bound to the moto endpoint."""

    def __init__(self, session: Any, endpoint: str, region: str) -> None:
        self.session = session
        self.endpoint = endpoint
        self.region = region
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            made = self.session.client(service, endpoint_url=self.endpoint, region_name=self.region, config=_config())
            if os.environ.get(CALLS_ENV):
                made.meta.events.register("before-call", _record_call)
            self._clients[service] = made
        return self._clients[service]


CALLS_ENV = "LIT_FAKECLOUD_CALLS"  # a file: each API call the stack engine makes, for what, one JSON a line
MAKING = threading.local()  # .what: the resource type (or invoke token) the engine is making now


def _record_call(model: Any, **_: Any) -> None:
    line = {"what": getattr(MAKING, "what", ""), "call": f"{model.service_model.signing_name}:{model.name}"}
    with open(os.environ[CALLS_ENV], "a") as out:
        out.write(json.dumps(line) + "\n")


def base_session(region: str = DEFAULT_REGION, credentials: Optional[tuple[str, str]] = None) -> Any:
    """A session on the given (access key id, secret) or else the environment's: the operator's, whose only
    permission in the fake cloud is sts:AssumeRole (DUMMY_KEY, refused there, if none is set)."""
    import boto3

    key, secret = credentials or (os.environ.get("AWS_ACCESS_KEY_ID") or DUMMY_KEY,
                                  os.environ.get("AWS_SECRET_ACCESS_KEY") or DUMMY_KEY)
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region)


def check_role(role_arn: str, external_id: Optional[str]) -> str:
    """The role's account; FakeCloudError for what AWS would refuse (moto itself assumes any string)."""
    match = ROLE_ARN.match(role_arn or "")
    if not match:
        raise FakeCloudError(f"cannot assume role {role_arn!r}: not an IAM role ARN "
                             "(arn:aws:iam::<12-digit account>:role/<name>)")
    if external_id is not None and not EXTERNAL_ID.match(external_id):
        raise FakeCloudError(f"cannot assume role {role_arn}: the external ID {external_id!r} is not valid "
                             r"(AWS wants 2 to 1224 characters of [\w+=,.@:/-])")
    return match["account"]


def assumed_session(endpoint: str, role_arn: str, external_id: Optional[str] = None,
                    region: str = DEFAULT_REGION, session_name: str = "lit-fakecloud",
                    credentials: Optional[tuple[str, str]] = None) -> Any:
    """A boto3 Session with the credentials of role_arn assumed through moto's STS, by the operator
    (`credentials`, else the environment's; see base_session).

    moto files what this session makes under the role's account (it maps the temporary access key to it).
    """
    import boto3
    import botocore.exceptions

    endpoint = check_endpoint(endpoint)
    account = check_role(role_arn, external_id)
    session_name = re.sub(r"[^\w+=,.@-]", "-", session_name)[:64]
    if not SESSION_NAME.match(session_name):
        session_name = "lit-fakecloud"
    sts = base_session(region, credentials).client("sts", endpoint_url=endpoint, region_name=region,
                                                   config=_config())
    kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    try:
        creds = sts.assume_role(**kwargs)["Credentials"]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise FakeCloudError(f"cannot assume role {role_arn}: {error.get('Code')}: {error.get('Message')}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise FakeCloudError(f"cannot assume role {role_arn}: {exc}") from None
    session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                    aws_secret_access_key=creds["SecretAccessKey"],
                                    aws_session_token=creds["SessionToken"], region_name=region)
    seen = session.client("sts", endpoint_url=endpoint, region_name=region,
                          config=_config()).get_caller_identity()["Account"]
    if seen != account:
        raise FakeCloudError(f"assuming {role_arn} gave account {seen}, not {account}")
    return session


def endpoint_from_env(env: Optional[dict[str, str]] = None) -> str:
    source = os.environ if env is None else env
    return check_endpoint(source.get("AWS_ENDPOINT_URL", "").strip())
