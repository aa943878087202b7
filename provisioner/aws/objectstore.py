"""The aws cluster's object store: its S3 bucket, which works reach through presigned URLs (machines hold no AWS
credentials). Keys as works name them map to objects: "artifacts/..." under `runs/<run id>/` (this run's),
"drives/NAME/..." as they are (kept across runs)."""

from __future__ import annotations

from typing import Any

from lit.runtime.errors import InfrastructureError

PRESIGNED_SECONDS = 900
METHODS = {"put": "put_object", "get": "get_object"}


class S3ObjectStore:
    """The contract's ObjectStore over one bucket, for one run."""

    def __init__(self, s3_client: Any, bucket: str, run_id: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.run_id = run_id

    def object_key(self, key: str) -> str:
        if key.startswith("artifacts/"):
            return f"runs/{self.run_id}/{key}"
        if key.startswith("drives/"):
            return key
        raise InfrastructureError(f"no such object: {key}")

    def presign(self, op: str, key: str) -> str:
        """A URL valid for 15 minutes to put or get exactly one object."""
        method = METHODS.get(op)
        if method is None:
            raise InfrastructureError(f"no such operation: {op}")
        return str(self.s3.generate_presigned_url(method, Params={"Bucket": self.bucket, "Key": self.object_key(key)},
                                                  ExpiresIn=PRESIGNED_SECONDS))

    def list(self, prefix: str) -> list[str]:
        """The keys, as works name them ("drives/NAME/..."), of the objects that start with `prefix`."""
        physical = self.object_key(prefix)
        root = physical[:len(physical) - len(prefix)]  # what object_key puts before a key ("runs/RUN/" or "")
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=physical):
            keys += [o["Key"][len(root):] for o in page.get("Contents", [])]
        return keys

    def delete(self, key: str) -> bool:
        """Delete one object; False if there is none (S3's DeleteObject succeeds either way: asked first)."""
        import botocore.exceptions

        name = self.object_key(key)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        self.s3.delete_object(Bucket=self.bucket, Key=name)
        return True
