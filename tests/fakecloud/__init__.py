"""A fake AWS made of real parts: moto in server mode on a test bed's bridge, and a stack engine that runs lit's
real Pulumi program under mocks that make every resource for real in moto.

By hand::

    eval "$(python -m tests.fakecloud up)"     # moto + bridge in the background; prints export lines
    lit create cluster demo --provider aws --role-arn arn:aws:iam::111122223333:role/lit-byoc
    python -m tests.fakecloud down

From Python::

    with FakeCloud.up() as cloud:
        engine = MotoEngine(home, env=cloud.env)
        outputs = engine.up("demo", config, print)
        ec2 = cloud.client(cloud.session(role_arn, external_id), "ec2")
"""

from __future__ import annotations

from .aws import FakeCloudError, assumed_session, check_endpoint
from .engine import MotoEngine
from .server import FakeCloud, default_dir, fakecloud_fixture, requirement

__all__ = [
    "FakeCloud",
    "FakeCloudError",
    "MotoEngine",
    "assumed_session",
    "check_endpoint",
    "default_dir",
    "fakecloud_fixture",
    "requirement",
]
