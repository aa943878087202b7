"""A fake AWS made of real parts: moto in server mode on a test bed's bridge, and a stack engine that runs lit's
real Pulumi program under mocks that make every resource for real in moto.

By hand::

    eval "$(python -m tests.fakecloud up)"     # moto + bridge in the background; prints export lines
    lit create cluster demo --provider aws --role-arn arn:aws:iam::111122223333:role/lit-byoc \
        --external-id lit-test-external-id
    python -m tests.fakecloud down

From Python::

    with FakeCloud.up() as cloud:
        engine = MotoEngine(home, env=cloud.env)
        outputs = engine.up("demo", config, print)
        ec2 = cloud.client(cloud.session(role_arn, external_id), "ec2")
        admin = cloud.client(cloud.admin_session(), "iam")          # for checks the role may not make

IAM is enforced (authz.py): the exported credentials are an operator's that may only assume roles; the role
``lit-byoc`` (ROLE_ARN, EXTERNAL_ID in server.py) has the policies ``lit cluster policy`` prints, and
``cloud.create_role(arn, external_id, permissions)`` makes another (e.g. with a policy missing an action).

Instances are hosts (instances.py): an instance running in moto, in any account, is a test-bed host at its private
address within ~2 s that boots a Debian image (image.py, machine.py) on a copy-on-write disk of its own, configured
by real cloud-init from the instance's user data (login ``ubuntu``, not root, passwordless sudo, as on Ubuntu's
images; root may not log in); stop/start ends its processes and boots it again from its disk, terminate removes
it and its disk, ``sudo shutdown -h now`` on it stops the instance in moto::

        iid = ec2.run_instances(ImageId=CPU_IMAGE_ID, SubnetId=..., UserData=..., MinCount=1, MaxCount=1)...
        host = cloud.wait_host(iid, timeout=60)        # sshd answers at host.address (the private IP)
        # and soon at the instance's PublicIpAddress (motod.PUBLIC_CIDR), from this machine only, not other hosts
        cloud.hosts_for_instances()                    # {instance id: Host}

Images (amis.py): "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261101" (owner alias amazon) and
"ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-20261101" (owner 099720109477), each with an older one.
"""

from __future__ import annotations

from .amis import CPU_IMAGE_ID, GPU_IMAGE_ID
from .aws import FakeCloudError, assumed_session, check_endpoint
from .engine import MotoEngine
from .server import FakeCloud, default_dir, fakecloud_fixture, requirement

__all__ = [
    "CPU_IMAGE_ID",
    "GPU_IMAGE_ID",
    "FakeCloud",
    "FakeCloudError",
    "MotoEngine",
    "assumed_session",
    "check_endpoint",
    "default_dir",
    "fakecloud_fixture",
    "requirement",
]
