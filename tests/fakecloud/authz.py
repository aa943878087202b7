"""IAM enforced in the fake cloud: moto's own authorization (INITIAL_NO_AUTH_ACTION_COUNT=0), made closer to IAM.

Runs inside the moto process (motod.py), before the server starts:

- `closer_to_iam()` patches moto's evaluation where it is looser or wrong for what lit does: S3 requests are
  authorized under IAM's action names (moto checks GetBucketReplication, GetBucketEncryption, the ownership
  controls and the public access block as s3:ListBucket, their puts as s3:CreateBucket, HeadBucket as
  s3:HeadBucket); DeleteObjects is checked as s3:DeleteObject on the bucket's objects, not on the bucket; IAM
  calls naming an instance profile are checked on its ARN (moto: on the role's, or "*"), calls naming a role not
  made yet on the ARN it will have; Action patterns match as IAM's (case-insensitive, `?`); a trust policy's
  `arn:...:root` principal admits the account's users and roles, and its StringEquals on a key the request lacks
  (an AssumeRole without the external ID) refuses; assuming a role that does not exist is refused; a presigned
  URL (SigV4 in the query: moto's checks want an Authorization header and fail) is checked as S3 checks it, its
  signature and expiry, then the signer's permission for the action.
- `bootstrap()` makes, in the fake cloud's account, an operator user allowed only sts:AssumeRole (what lit's
  own credentials are) and an admin user for the test fixtures (which make the customer's role), with access
  keys, written to a JSON file for the fake cloud's owner.

Where moto stays gentler than IAM is listed in README.md ("Without an AWS account: the fake cloud").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, urlparse

ACCOUNT = "111122223333"  # the fake cloud's account: the operator's users and the customer's role live here
OPERATOR = "lit-operator"
ADMIN = "fakecloud-admin"
OPERATOR_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/*"}]}
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# S3 requests (their query parameter) -> the IAM action that authorizes them, where moto says otherwise.
S3_ACTIONS = {
    "GET": {"encryption": "GetEncryptionConfiguration", "replication": "GetReplicationConfiguration",
            "ownershipControls": "GetBucketOwnershipControls", "publicAccessBlock": "GetBucketPublicAccessBlock",
            "object-lock": "GetBucketObjectLockConfiguration", "requestPayment": "GetBucketRequestPayment"},
    "PUT": {"encryption": "PutEncryptionConfiguration", "replication": "PutReplicationConfiguration",
            "ownershipControls": "PutBucketOwnershipControls", "publicAccessBlock": "PutBucketPublicAccessBlock",
            "object-lock": "PutBucketObjectLockConfiguration", "requestPayment": "PutBucketRequestPayment"},
    "DELETE": {"encryption": "PutEncryptionConfiguration", "replication": "PutReplicationConfiguration",
               "ownershipControls": "PutBucketOwnershipControls", "publicAccessBlock": "PutBucketPublicAccessBlock",
               "cors": "PutBucketCORS"},
    "HEAD": {"DEFAULT": "ListBucket"},
}
ROOT_PRINCIPAL = re.compile(r"^(?:arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):root|(?P<bare>\d{12}))$")


def closer_to_iam() -> None:
    """Patch moto's authorization in this process (see the module's docstring)."""
    from moto.iam import access_control
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.iam.responses import IamResponse
    from moto.s3 import responses as s3_responses
    from moto.utilities.utils import get_partition

    from lit.provisioner.aws.policy import action_matches, resource_matches

    for method, names in S3_ACTIONS.items():
        s3_responses.ACTION_MAP["BUCKET"][method].update(names)

    authorize_s3 = s3_responses.S3Response._authenticate_and_authorize_s3_action

    def _authenticate_and_authorize_s3_action(self: Any, bucket_name: Optional[str] = None,
                                              key_name: Optional[str] = None) -> None:
        if self.data.get("Action") == "DeleteObject" and bucket_name and not key_name:  # DeleteObjects
            key_name = "*"
        authorize_s3(self, bucket_name=bucket_name, key_name=key_name)

    s3_responses.S3Response._authenticate_and_authorize_s3_action = _authenticate_and_authorize_s3_action

    def _determine_resource(self: Any) -> str:
        def first(key: str) -> Optional[str]:
            value = self.data.get(key)
            return (value[0] if isinstance(value, list) else value) if value else None

        where = f"arn:{self.partition}:iam::{self.current_account}"
        profile = first("InstanceProfileName")
        if profile:
            try:
                return str(self.backend.get_instance_profile(profile).arn)
            except NotFoundException:
                return f"{where}:instance-profile{first('Path') or '/'}{profile}"
        role = first("RoleName")
        if role:
            try:
                return str(self.backend.get_role(role).arn)
            except NotFoundException:
                return f"{where}:role{first('Path') or '/'}{role}"
        return "*"

    IamResponse._determine_resource = _determine_resource

    statement = access_control.IAMPolicyStatement

    def _check_element_matches(self: Any, element: str, value: str) -> bool:
        patterns = self._statement[element]
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if element in ("Action", "NotAction"):
            return any(action_matches(p, value) for p in patterns)
        if value == "*":  # moto does not say what this request acts on (EC2, most IAM): no Resource is checked
            return True
        return any(resource_matches(p, value) for p in patterns)

    def _check_principal(self: Any, principal: str) -> bool:
        expected = self._statement.get("Principal")
        if not expected or expected == "*":
            return True
        named = expected.get("AWS") if isinstance(expected, dict) else None
        for entry in [named] if isinstance(named, str) else list(named or []):
            if entry in ("*", principal):
                return True
            root = ROOT_PRINCIPAL.match(entry)
            parts = principal.split(":")
            if root and len(parts) > 4 and parts[4] == (root["account"] or root["bare"]) \
                    and (root["partition"] in (None, parts[1])):
                return True
        return False

    check_conditions = statement._check_conditions

    def _check_conditions(self: Any, incoming: Optional[dict[str, str]]) -> bool:
        if incoming is not None:  # a trust policy: the request's values are known
            for key, wanted in (self._statement.get("Condition") or {}).get("StringEquals", {}).items():
                if incoming.get(key) not in ([wanted] if isinstance(wanted, str) else list(wanted)):
                    return False
        return bool(check_conditions(self, incoming))

    statement._check_element_matches = _check_element_matches
    statement._check_principal = _check_principal
    statement._check_conditions = _check_conditions

    request = access_control.IAMRequestBase
    check_action_permitted = request.check_action_permitted

    def check_action_permitted_(self: Any, resource: str) -> None:
        if self._action.lower() == "sts:assumerole":
            parts = resource.split(":")
            try:
                iam_backends[parts[4]][get_partition(self._region)].get_role_by_arn(resource)
            except (NotFoundException, IndexError, KeyError):
                self._raise_access_denied()
        check_action_permitted(self, resource)

    request.check_action_permitted = check_action_permitted_

    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        query = dict(parse_qsl(urlparse(self.uri).query, keep_blank_values=True))
        if ("Authorization" in self.headers or ActionAuthenticatorMixin.request_count
                < settings.INITIAL_NO_AUTH_ACTION_COUNT):
            return authorize(self, iam_request_cls, resource)
        if "X-Amz-Credential" not in query:  # unsigned, or SigV2 in the query: refused (moto would fail with 500)
            from moto.core.exceptions import AccessDeniedError
            from moto.s3.exceptions import S3AccessDeniedError

            raise S3AccessDeniedError() if iam_request_cls.__name__.startswith("S3") else \
                AccessDeniedError(user_arn="anonymous", action=str(self._get_action()))
        _presigned(self, iam_request_cls, resource, query)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action


def _presigned(response: Any, iam_request_cls: type, resource: str, query: dict[str, str]) -> None:
    """A request signed in its query (SigV4 presigned URL): the signature, the expiry, then the permission."""
    from moto.iam.models import get_account_id_from

    credential = query["X-Amz-Credential"]
    headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, "
                                f"Signature={query.get('X-Amz-Signature', '')}",
               "X-Amz-Date": query.get("X-Amz-Date", "")}
    if "X-Amz-Security-Token" in query:
        headers["X-Amz-Security-Token"] = query["X-Amz-Security-Token"]
    account = get_account_id_from(credential.split("/")[0])
    checker = iam_request_cls(account_id=account, method=response.method, path=response.raw_path,
                              data=response.data, body=response.raw_body, headers=headers,
                              action=response._get_action())
    signed = datetime.strptime(query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    expired = time.time() > signed.timestamp() + int(query.get("X-Amz-Expires") or 0)
    secret = checker._access_key.create_credentials().secret_key
    if expired or not hmac.compare_digest(_query_signature(response, query, secret), query.get("X-Amz-Signature", "")):
        checker._raise_signature_does_not_match()
    checker.check_action_permitted(resource)


def _query_signature(response: Any, query: dict[str, str], secret: str) -> str:
    """SigV4 of a presigned S3 request: host the only signed header, the payload unsigned."""
    def enc(value: str) -> str:
        return quote(value, safe="-_.~")

    pairs = sorted((enc(k), enc(v)) for k, v in query.items() if k != "X-Amz-Signature")
    canonical = "\n".join([response.method, response.raw_path.split("?")[0],
                           "&".join(f"{k}={v}" for k, v in pairs), f"host:{response.headers.get('Host', '')}\n",
                           "host", "UNSIGNED-PAYLOAD"])
    _, day, region, service, terminal = query["X-Amz-Credential"].split("/")
    scope = f"{day}/{region}/{service}/{terminal}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def bootstrap(credentials: Path, account: str = ACCOUNT) -> dict[str, Any]:
    """Make the operator and admin users with their access keys in `account`; write them to `credentials`."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account]["aws"]
    found: dict[str, Any] = {"account": account}
    for user, document in ((OPERATOR, OPERATOR_POLICY), (ADMIN, ADMIN_POLICY)):
        iam.create_user("us-east-1", user)
        iam.put_user_policy(user, "fakecloud", json.dumps(document))
        key = iam.create_access_key(user)
        found[user] = {"arn": f"arn:aws:iam::{account}:user/{user}", "access_key_id": key.access_key_id,
                       "secret_access_key": key.secret_access_key}
    tmp = credentials.with_name(f".{credentials.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(found, indent=2) + "\n")
    os.replace(tmp, credentials)
    return found
