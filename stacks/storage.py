"""The cluster's bucket for code bundles and artifacts: encrypted, all public access blocked.

The bucket (with its encryption, public access block and ownership settings) is retained when the stack is
destroyed: lit deletes it itself, and only when it is empty or the user said --delete-data (never lose data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws


@dataclass
class StorageArgs:
    tags: dict[str, str] = field(default_factory=dict)
    bucket_name: Optional[str] = None  # None: lit-<cluster>- and a random suffix


class Storage(pulumi.ComponentResource):
    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lit:cluster:Storage", name, None, opts)
        # A kept bucket keeps its encryption and public access block too.
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        named = {"bucket": args.bucket_name} if args.bucket_name else {"bucket_prefix": f"lit-{name}-"[:37]}
        self.bucket = aws.s3.Bucket(f"{name}-data", **named, force_destroy=False,
                                    tags=args.tags, opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-data", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(sse_algorithm="AES256"),
                bucket_key_enabled=True)],
            opts=child)
        aws.s3.BucketPublicAccessBlock(f"{name}-data", bucket=self.bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
                                       opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-data", bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
        self.register_outputs({"bucket": self.bucket.id})
