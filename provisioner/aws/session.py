"""All AWS SDK access for lit sits here: lazy imports, assumed-role sessions that refresh, error mapping.

lit always works through the customer's role (assumed with the external ID when given), never the
operator's own credentials directly: resources land in the customer's account, and the role is the limit.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import urlparse

from lit.runtime.errors import BadInput, InfrastructureError

ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d+):role/(?P<name>[\w+=,.@/-]{1,512})$"
)
SESSION_SECONDS = 3600


def boto3_module() -> Any:
    try:
        import boto3
    except ImportError:
        raise BadInput("the aws provider needs its extras: pip install 'lit[aws]'") from None
    return boto3


def check_role_arn(arn: str) -> str:
    """The account ID of a role ARN, or BadInput saying what is wrong with it."""
    match = ROLE_ARN.match(arn or "")
    if not match:
        raise BadInput(f"--role-arn {arn!r} is not an IAM role ARN; expected "
                       "arn:aws:iam::<12-digit account>:role/<name>")
    account = match["account"]
    if len(account) != 12:
        hint = " (the Lightning docs' example arn:aws:iam::1234567890:role/lai-byoc is two digits short)" \
            if len(account) == 10 else ""
        raise BadInput(f"--role-arn {arn!r}: the account ID {account} has {len(account)} digits; AWS account IDs "
                       f"have 12{hint}")
    return account


EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def check_external_id(external_id: Optional[str]) -> Optional[str]:
    if external_id is None or external_id == "":
        return None
    if not EXTERNAL_ID.match(external_id):
        raise BadInput(f"--external-id: AWS external IDs are 2-1224 characters of letters, digits and +=,.@:/-_ "
                       f"(got {len(external_id)} characters)")
    return external_id


def check_region(region: str) -> str:
    regions = boto3_module().session.Session().get_available_regions("ec2")
    regions += boto3_module().session.Session().get_available_regions("ec2", partition_name="aws-us-gov")
    if region not in regions:
        raise BadInput(f"--region {region!r} is not an AWS region; e.g. us-east-1, eu-west-1 "
                       f"({len(regions)} known to botocore)")
    return region


def emulated() -> Optional[str]:
    """The endpoint when lit talks to an AWS emulator instead of AWS (AWS_ENDPOINT_URL), else None."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    return endpoint or None


def is_private_host(host: str) -> bool:
    """`localhost`, or a private or loopback IP address: where lit may connect against an emulator."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def check_emulator_is_private() -> None:
    """Against an emulator lit only ever talks to private addresses (it invents public ones: never contact them)."""
    endpoint = emulated()
    if endpoint is not None and not is_private_host(urlparse(endpoint).hostname or ""):
        raise BadInput(f"AWS_ENDPOINT_URL={endpoint}: an emulator must be on a private address")


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """The one place botocore's errors become lit's."""
    import botocore.exceptions as errors

    try:
        yield
    except errors.NoCredentialsError:
        raise BadInput(f"{what}: no AWS credentials found; configure them (aws configure, AWS_PROFILE or "
                       "AWS_ACCESS_KEY_ID) so lit can assume your role") from None
    except errors.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise InfrastructureError(f"{what}: {code}: {message}") from None
    except (errors.EndpointConnectionError, errors.ConnectTimeoutError, errors.ReadTimeoutError) as exc:
        raise InfrastructureError(f"{what}: cannot reach AWS: {exc}") from None
    except errors.BotoCoreError as exc:
        raise InfrastructureError(f"{what}: {exc}") from None


def s3_config() -> Any:
    """S3 clients sign with SigV4 (every region requires it) and name the bucket's regional virtual host,
    `<bucket>.s3.<region>.amazonaws.com`, in presigned URLs. botocore's default is the global host
    `<bucket>.s3.amazonaws.com`, which outside us-east-1 answers a new bucket with a 307 redirect that breaks
    signed requests, and never serves opt-in regions (S3 user guide: "Virtual hosting of buckets", "Making
    requests to a bucket in a Region other than us-east-1"; botocore's s3 config: addressing_style,
    us_east_1_regional_endpoint)."""
    from botocore.config import Config

    return Config(signature_version="s3v4",
                  s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"})


class RoleSession:
    """A boto3 session on the customer's role whose credentials refresh before they expire."""

    def __init__(self, role_arn: str, external_id: Optional[str], region: str, session_name: str) -> None:
        self.role_arn = role_arn
        self.external_id = external_id or None
        self.region = region
        self.session_name = re.sub(r"[^\w+=,.@-]", "-", session_name)[:64]
        boto3 = boto3_module()
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        self._base = boto3.session.Session(region_name=region)
        with mapped_errors(f"assuming {role_arn}"):
            credentials = RefreshableCredentials.create_from_metadata(
                metadata=self._assume(), refresh_using=self._assume, method="sts-assume-role")
        core = get_session()
        # One loader for both sessions: the service models and endpoint data it parsed for STS are not read again.
        core.register_component("data_loader", self._base._session.get_component("data_loader"))
        core._credentials = credentials
        core.set_config_variable("region", region)
        self.session = boto3.session.Session(botocore_session=core)
        _install_hooks(self.session)
        self._clients: dict[tuple[str, bool], Any] = {}
        self._client_lock = threading.Lock()

    def _assume(self) -> dict[str, str]:
        sts = self._base.client("sts")
        kwargs: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name,
                                  "DurationSeconds": SESSION_SECONDS}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        with mapped_errors(f"assuming {self.role_arn}"):
            creds = sts.assume_role(**kwargs)["Credentials"]
        expiry = creds["Expiration"]
        if isinstance(expiry, datetime):
            expiry = expiry.astimezone(timezone.utc).isoformat()
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": expiry}

    def client(self, service: str, fail_fast: bool = False) -> Any:
        """A client on the role. `fail_fast`: no retries (launches: a capacity error moves on at once)."""
        from botocore.config import Config

        # Clients are thread-safe and costly to build (each parses its service model): one per kind. Their
        # credentials refresh by themselves (RefreshableCredentials), so they outlive a role session's hour.
        with self._client_lock:
            key = (service, fail_fast)
            if key not in self._clients:
                config = Config(retries={"max_attempts": 1, "mode": "standard"}) if fail_fast else None
                if service == "s3":
                    config = s3_config().merge(config) if config else s3_config()
                self._clients[key] = self.session.client(service, region_name=self.region, config=config)
            return self._clients[key]

    def account(self) -> str:
        with mapped_errors("checking the assumed role"):
            return str(self.client("sts").get_caller_identity()["Account"])


def _install_hooks(session: Any) -> None:
    """LIT_BOTO_HOOKS=module:function registers botocore event hooks on every session lit makes: the seam
    tests use to inject AWS errors (capacity, quotas) into a real `lit` process."""
    spec = os.environ.get("LIT_BOTO_HOOKS")
    if not spec:
        return
    import importlib

    module_name, _, attr = spec.partition(":")
    getattr(importlib.import_module(module_name), attr)(session.events)


def operator_public_cidr() -> str:
    """The operator's public address as AWS sees it, /32 (real AWS only)."""
    import urllib.request

    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as response:
            address = response.read().decode().strip()
        ipaddress.ip_address(address)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot find your public address ({exc}); pass --ssh-cidr YOUR.ADDRESS/32") from None
    return f"{address}/32"
