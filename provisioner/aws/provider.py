"""The aws provider: an EC2 instance per work, through the customer's role, against the stack's outputs.

A fast path (boto3, not a stack update per work). Every instance: IMDSv2 required, an encrypted root volume,
tags lit:cluster / lit:app / lit:run / lit:work, InstanceInitiatedShutdownBehavior=stop, the cluster's subnet
and security group, and cloud-init user data with the cluster's SSH key and a host key lit generated — so the
host key is known before the first contact. That copy can be read by anyone allowed to describe the
instance, so once connected lit replaces the host key over the verified connection and pins the new one.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.compute import CloudCompute
from lit.runtime.errors import InfrastructureError

from .. import store
from ..base import Cluster, Lease, Machine, Progress
from . import catalog
from .session import RoleSession, emulated, is_private_host, mapped_errors

CAPACITY_ERRORS = frozenset({"InsufficientInstanceCapacity", "Unsupported", "InsufficientHostCapacity",
                             "InsufficientCapacity"})
QUOTA_ERRORS = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded"})
# How long RunInstances is retried while EC2 does not see the cluster's new instance profile. IAM is eventually
# consistent ("changes ... take time to become visible", IAM user guide: troubleshooting, "Changes that I make are
# not always immediately visible"); reports of EC2 not seeing a new profile go past two minutes.
PROFILE_PROPAGATION_SECONDS = 300.0
# EC2 is eventually consistent too (EC2 API reference, "Eventual consistency in the Amazon EC2 API"): right after
# RunInstances, StopInstances or TerminateInstances may answer InvalidInstanceID.NotFound ("does not mean the
# instance was or will be terminated") and a pending instance answers StopInstances with IncorrectInstanceState.
# lit asks again until DescribeInstances confirms, for up to this long.
SETTLE_SECONDS = 600.0
NOT_YET = frozenset({"InvalidInstanceID.NotFound", "IncorrectInstanceState"})
LIVE = ["pending", "running", "stopping", "stopped"]


def new_host_key() -> tuple[str, str]:
    """A fresh ed25519 host key: (OpenSSH private key text, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


# Runs as root on the instance: write the new ed25519 host key where the running sshd reads it, and make it
# reload (SIGHUP re-executes sshd; open sessions stay). The sshd is found by its executable and its config by
# its command line, so this works on a stock Ubuntu image and on any sshd started with -f.
REPLACE_HOST_KEY = r"""
import os, shlex, signal, sys

def exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""

def parent(pid):
    with open("/proc/%d/stat" % pid, "rb") as fh:
        stat = fh.read()
    return int(stat[stat.rfind(b")") + 2:].split()[1])

def main(private, public):
    sshds = [int(e) for e in os.listdir("/proc") if e.isdigit() and os.path.basename(exe(int(e))) == "sshd"]
    listeners = [p for p in sshds if os.path.basename(exe(parent(p))) != "sshd"]
    if not listeners:
        sys.exit("no running sshd found")
    pid = min(listeners)
    with open("/proc/%d/cmdline" % pid, "rb") as fh:
        args = [a for a in fh.read().decode(errors="replace").replace("\0", " ").split()]
    config = args[args.index("-f") + 1] if "-f" in args[:-1] else "/etc/ssh/sshd_config"
    keys = []
    with open(config) as fh:
        for line in fh:
            words = line.split()
            if len(words) >= 2 and words[0].lower() == "hostkey":
                keys.append(words[1])
    target = next((k for k in keys if "ed25519" in k), None) or "/etc/ssh/ssh_host_ed25519_key"
    tmp = target + ".lit-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private.strip() + "\n")
    os.replace(tmp, target)
    with open(target + ".pub", "w") as fh:
        fh.write(public.strip() + "\n")
    os.kill(pid, signal.SIGHUP)
    print(target)
"""


def refuse_public_under_emulator(instance_id: str, address: str) -> None:
    """Against an emulator (AWS_ENDPOINT_URL set) lit connects to private and loopback addresses only: the addresses
    an emulator hands out are made up, and a public one may be anybody's machine on the internet."""
    endpoint = emulated()
    if endpoint is not None and not is_private_host(address):
        raise InfrastructureError(f"{instance_id}: the emulator at {endpoint} gave it the address {address}, which "
                                  "is not private: lit connects to private addresses only against an emulator")


def user_data(authorized_key: str, host_private: str, host_public: str) -> str:
    """#cloud-config for cloud-init's cc_ssh: the default user's authorized key, and the host key lit made. With
    `ssh_keys` given, cc_ssh writes those and generates none (cloud-init docs, module "SSH": "If no host keys are
    specified using ssh_keys, then keys will be generated"); `ssh_genkeytypes: []` is refused by its schema."""
    indented = "\n".join("    " + line for line in host_private.strip().splitlines())
    return (
        "#cloud-config\n"
        "ssh_authorized_keys:\n"
        f"  - {authorized_key.strip()}\n"
        "ssh_deletekeys: true\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{indented}\n"
        f"  ed25519_public: {host_public.strip()}\n"
    )


def pick_image(images: list[dict[str, Any]], spec: catalog.ImageSpec) -> Optional[tuple[str, str, int]]:
    """(image id, root device name, root snapshot GiB) of the newest image of the first pattern that has any."""
    for pattern in spec.name_patterns:
        matching = [i for i in images if fnmatch.fnmatchcase(i.get("Name", ""), pattern)]
        if matching:
            newest = max(matching, key=lambda i: i.get("CreationDate", ""))
            root = newest.get("RootDeviceName") or "/dev/sda1"
            sizes = [int(m["Ebs"].get("VolumeSize") or 0) for m in newest.get("BlockDeviceMappings", [])
                     if m.get("DeviceName") == root and "Ebs" in m]
            return newest["ImageId"], root, max(sizes, default=0)
    return None


# What each call is waiting for: the states that confirm it took effect.
SETTLED = {"stop_instances": ("stopping", "stopped"), "terminate_instances": ("shutting-down", "terminated")}


def settle(ec2: Any, call: str, instance_ids: list[str], seconds: float = SETTLE_SECONDS,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """StopInstances or TerminateInstances, asked again until DescribeInstances confirms it for every instance.

    An instance lit cannot yet see (InvalidInstanceID.NotFound right after it was made) or that cannot take the
    call yet (IncorrectInstanceState: still pending) is asked again with backoff; an instance never seen for
    `seconds` raises, naming it, so no machine is quietly left running."""
    import botocore.exceptions

    wanted = SETTLED[call]
    pending = list(instance_ids)
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            getattr(ec2, call)(InstanceIds=pending)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in NOT_YET:
                raise
        states = _states(ec2, pending)
        pending = [i for i in pending if states.get(i) not in wanted]
        if not pending:
            return
        if time.monotonic() + delay > deadline:
            seen = ", ".join(f"{i} ({states.get(i, 'not visible')})" for i in pending)
            raise InfrastructureError(f"{call} did not take effect within {seconds:.0f} s for {seen}; check the EC2 "
                                      "console and remove it with: aws ec2 terminate-instances --instance-ids "
                                      + " ".join(pending))
        sleep(delay)
        delay = min(delay * 2, 5.0)


def wait_terminated(ec2: Any, instance_ids: list[str], seconds: float = SETTLE_SECONDS,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Until every instance is terminated (the security group and subnets can only go after that)."""
    deadline = time.monotonic() + seconds
    while True:
        states = _states(ec2, instance_ids)
        left = [i for i in instance_ids if states.get(i, "terminated") != "terminated"]
        if not left:
            return
        if time.monotonic() > deadline:
            raise InfrastructureError(f"still not terminated after {seconds:.0f} s: "
                                      + ", ".join(f"{i} ({states[i]})" for i in left))
        sleep(2.0)


def _states(ec2: Any, instance_ids: list[str]) -> dict[str, str]:
    """Each instance's state as DescribeInstances sees it now (instances it does not see yet are left out)."""
    import botocore.exceptions

    states = {}
    for instance_id in instance_ids:  # one by one: one id not visible yet fails a call that names several
        try:
            reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            continue
        for reservation in reservations:
            for instance in reservation["Instances"]:
                states[instance["InstanceId"]] = instance["State"]["Name"]
    return states


class AWSProvider:
    name = "aws"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, RoleSession] = {}
        self._images: dict[tuple[str, catalog.ImageSpec], tuple[str, str, int]] = {}

    # -- sessions and lookups ---------------------------------------------------------------------
    def session(self, cluster: Cluster) -> RoleSession:
        with self._lock:
            if cluster.name not in self._sessions:
                s = cluster.settings
                self._sessions[cluster.name] = RoleSession(s["role_arn"], s.get("external_id"), s["region"],
                                                           f"lit-{cluster.name}")
            return self._sessions[cluster.name]

    def _image(self, cluster: Cluster, spec: catalog.ImageSpec) -> tuple[str, str, int]:
        """(image id, root device name, root snapshot size in GiB) of the newest available x86_64 image of the
        first of the spec's name patterns that has any."""
        key = (cluster.name, spec)
        if key not in self._images:
            ec2 = self.session(cluster).client("ec2")
            with mapped_errors("looking up the machine image"):
                images = ec2.describe_images(Owners=[spec.owner], Filters=[
                    {"Name": "name", "Values": list(spec.name_patterns)},
                    {"Name": "architecture", "Values": ["x86_64"]}, {"Name": "state", "Values": ["available"]}],
                )["Images"]
            chosen = pick_image(images, spec)
            if chosen is None:
                raise InfrastructureError(f"no image named {' or '.join(map(repr, spec.name_patterns))} from owner "
                                          f"{spec.owner} in {cluster.settings['region']}")
            self._images[key] = chosen
        return self._images[key]

    @staticmethod
    def ssh_user(gpus: int) -> str:
        return os.environ.get("LIT_AWS_SSH_USER") or (catalog.GPU_IMAGE if gpus else catalog.CPU_IMAGE).user

    @staticmethod
    def address(instance: dict[str, Any]) -> str:
        """Where lit connects: the instance's public address (its private one only if it has no public one)."""
        return str(instance.get("PublicIpAddress") or instance["PrivateIpAddress"])

    @staticmethod
    def internal_address(instance: dict[str, Any]) -> str:
        """Where the cluster's other instances reach it: the security group admits cluster traffic by group
        reference, which AWS matches on private addresses only."""
        return str(instance["PrivateIpAddress"])

    # -- placing works ----------------------------------------------------------------------------
    def can_ever_place(self, cluster: Cluster, compute: CloudCompute) -> Optional[str]:
        return None if compute.name in catalog.CATALOG else f"no instance type serves {compute.name!r}"

    def candidates(self, cluster: Cluster, compute: CloudCompute, load: dict[str, int]) -> list[Machine]:
        return [Machine(f"ec2:new:{compute.name}", "", self.ssh_user(compute.gpus))]  # made on demand

    def acquire(self, cluster: Cluster, compute: CloudCompute, machine: Machine, run_id: str, work: str,
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None) -> Optional[Lease]:
        told = made or (lambda lease: None)
        stopped = self._stopped_instance(cluster, app, work, compute)
        if stopped is not None:
            return self._restart(cluster, compute, stopped, progress, told)
        return self._launch(cluster, compute, run_id, app, work, progress, told)

    def _stopped_instance(self, cluster: Cluster, app: str, work: str,
                          compute: CloudCompute) -> Optional[dict[str, Any]]:
        """A machine kept (--keep-machines) by an earlier run of the same app (`app` is its stable identity, see
        ClusterLauncher) for the same work with the same compute; never another app's."""
        ec2 = self.session(cluster).client("ec2")
        with mapped_errors("looking for a stopped instance of this work"):
            found = ec2.describe_instances(Filters=[
                {"Name": "tag:lit:cluster", "Values": [cluster.name]}, {"Name": "tag:lit:app", "Values": [app]},
                {"Name": "tag:lit:work", "Values": [work]}, {"Name": "tag:lit:compute", "Values": [compute.name]},
                {"Name": "instance-type", "Values": [t.name for t in catalog.types_for(compute.name)]},
                {"Name": "instance-state-name", "Values": ["stopped", "stopping"]}])["Reservations"]
        instances = [i for r in found for i in r["Instances"]]
        return instances[0] if instances else None

    def _restart(self, cluster: Cluster, compute: CloudCompute, instance: dict[str, Any],
                 progress: Progress, made: Callable[[Lease], None]) -> Lease:
        """Start a stopped instance of this work again. A capacity error fails the work: the machine (and its
        disk) is not silently replaced."""
        ec2 = self.session(cluster).client("ec2", fail_fast=True)
        instance_id = instance["InstanceId"]
        progress(f"starting {instance_id} again ({instance['InstanceType']})")
        if instance["State"]["Name"] == "stopping":
            with mapped_errors(f"waiting for {instance_id} to stop"):
                ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id],
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        with mapped_errors(f"starting {instance_id}"):
            ec2.start_instances(InstanceIds=[instance_id])
        made(self._lease(cluster, compute, instance_id, instance["InstanceType"]))
        return self._running_lease(cluster, compute, instance_id, instance["InstanceType"], progress)

    def _launch(self, cluster: Cluster, compute: CloudCompute, run_id: str, app: str, work: str,
                progress: Progress, made: Callable[[Lease], None]) -> Lease:
        import botocore.exceptions

        outputs = cluster.settings["outputs"]
        session = self.session(cluster)
        ec2 = session.client("ec2", fail_fast=True)
        types = catalog.types_for(compute.name)
        self._check_quota(cluster, types[0])
        host_private, host_public = new_host_key()
        data = user_data(cluster.settings["public_key"], host_private, host_public)
        subnets = ec2.describe_subnets(SubnetIds=outputs["subnet_ids"])["Subnets"]
        subnets.sort(key=lambda s: outputs["subnet_ids"].index(s["SubnetId"]))
        tags = [{"Key": "lit:cluster", "Value": cluster.name}, {"Key": "lit:app", "Value": app},
                {"Key": "lit:run", "Value": run_id}, {"Key": "lit:work", "Value": work},
                {"Key": "lit:compute", "Value": compute.name},
                {"Key": "Name", "Value": f"lit {cluster.name} {work}"}]
        tried: list[str] = []
        for itype in types:
            image, root_device, snapshot_gib = self._image(cluster, catalog.image_for(itype))
            # The root volume may not be smaller than the image's snapshot (RunInstances refuses it).
            volume_gib = max(compute.disk_size, 100 if compute.gpus else 30, snapshot_gib)
            for subnet in subnets:
                where = f"{itype.name} in {subnet['AvailabilityZone']}"
                progress(f"requested {where}")
                try:
                    launched = self._run_instances(
                        ec2, where, progress,
                        ImageId=image, InstanceType=itype.name, MinCount=1, MaxCount=1,
                        SubnetId=subnet["SubnetId"], SecurityGroupIds=[outputs["security_group_id"]],
                        IamInstanceProfile={"Name": outputs["instance_profile_name"]},
                        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled",
                                         "HttpPutResponseHopLimit": 1},
                        BlockDeviceMappings=[{"DeviceName": root_device, "Ebs": {
                            "VolumeSize": volume_gib,
                            "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
                        InstanceInitiatedShutdownBehavior="stop", UserData=data,
                        TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                                           {"ResourceType": "volume", "Tags": tags}],
                    )
                except botocore.exceptions.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code in CAPACITY_ERRORS:
                        tried.append(f"{where}: {code}")
                        progress(f"{where}: {code}; trying the next option")
                        continue
                    if code in QUOTA_ERRORS:
                        raise InfrastructureError(f"{where}: {code}: {exc.response['Error'].get('Message', '')}. "
                                                  "Raise the quota in the Service Quotas console") from None
                    with mapped_errors(f"launching {where}"):
                        raise
                instance_id = launched["Instances"][0]["InstanceId"]
                self._pin(cluster, instance_id, host_public)
                made(self._lease(cluster, compute, instance_id, itype.name))
                return self._running_lease(cluster, compute, instance_id, itype.name, progress)
        raise InfrastructureError(f"no capacity for CloudCompute({compute.name!r}); tried: {'; '.join(tried)}")

    @staticmethod
    def _run_instances(ec2: Any, where: str, progress: Progress, **params: Any) -> Any:
        """RunInstances, waiting out IAM's propagation: right after `lit create cluster` EC2 may not see the
        cluster's new instance profile yet ("Invalid IAM Instance Profile name") for some seconds."""
        import botocore.exceptions

        deadline = time.monotonic() + PROFILE_PROPAGATION_SECONDS
        delay = 1.0
        while True:
            try:
                return ec2.run_instances(**params)
            except botocore.exceptions.ClientError as exc:
                error = exc.response.get("Error", {})
                if error.get("Code") != "InvalidParameterValue" or "iamInstanceProfile" not in error.get("Message", ""):
                    raise
                if time.monotonic() + delay > deadline:
                    raise InfrastructureError(
                        f"{where}: EC2 still does not see the cluster's instance profile "
                        f"{params['IamInstanceProfile']['Name']} after {PROFILE_PROPAGATION_SECONDS:.0f} s "
                        f"({error.get('Message', '')}); check that the cluster's stack is complete "
                        "(lit list clusters) and try again") from None
                progress("the cluster's instance profile is not visible to EC2 yet (IAM propagates in seconds); "
                         f"asking again in {delay:.0f} s")
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _check_quota(self, cluster: Cluster, itype: catalog.InstanceType) -> None:
        """Before launching GPU types: a zero vCPU quota is a clear error (where the API tells us)."""
        if itype.quota_code is None:
            return
        import botocore.exceptions

        quotas = self.session(cluster).client("service-quotas")
        try:
            value = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=itype.quota_code)["Quota"]["Value"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, NotImplementedError):
            return  # the API does not say (no permission, not offered here): let the launch decide
        if value <= 0:
            name = catalog.QUOTA_NAMES[itype.quota_code]
            raise InfrastructureError(
                f"your account's quota '{name}' ({itype.quota_code}) is {value:g} vCPUs in "
                f"{cluster.settings['region']}, so no {itype.name} can start. Request at least {itype.vcpus}: "
                f"Service Quotas console > Amazon EC2 > {name}, or `aws service-quotas request-service-quota-increase "
                f"--service-code ec2 --quota-code {itype.quota_code} --desired-value {itype.vcpus}`")

    def _pin(self, cluster: Cluster, instance_id: str, host_public: str) -> None:
        store.write_private(self.known_hosts(cluster, instance_id), f"# {instance_id}\n{host_public}\n")

    def known_hosts(self, cluster: Cluster, instance_id: str) -> Path:
        return store.cluster_dir(cluster.name) / "hosts" / f"{instance_id}.known_hosts"

    def _running_lease(self, cluster: Cluster, compute: CloudCompute, instance_id: str, itype_name: str,
                       progress: Progress) -> Lease:
        ec2 = self.session(cluster).client("ec2")
        with mapped_errors(f"waiting for {instance_id}"):
            ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id],
                                                    WaiterConfig={"Delay": 1, "MaxAttempts": 600})
            instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        address, internal = self.address(instance), self.internal_address(instance)
        refuse_public_under_emulator(instance_id, address)
        # known_hosts entries name the address: rewrite the pinned key under the address the instance got.
        path = self.known_hosts(cluster, instance_id)
        key_line = [line for line in path.read_text().splitlines() if line and not line.startswith("#")][-1]
        parts = key_line.split()
        store.write_private(path, f"{address} {parts[-2]} {parts[-1]}\n")
        if instance.get("PublicIpAddress"):
            progress(f"running: {instance_id} ({itype_name}) at {address} (private {internal})")
        else:
            progress(f"running: {instance_id} ({itype_name}) at {address}: it has no public address, so lit "
                     "connects to its private one")
        return self._lease(cluster, compute, instance_id, itype_name, address, internal)

    def _lease(self, cluster: Cluster, compute: CloudCompute, instance_id: str, itype_name: str,
               address: str = "", internal: str = "") -> Lease:
        itype = next((t for t in catalog.types_for(compute.name) if t.name == itype_name), None)
        machine = Machine(instance_id, address, self.ssh_user(compute.gpus), 22,
                          itype.vcpus if itype else 0, int((itype.memory_gib if itype else 0) * 1024),
                          compute.gpus, "running", "python3", internal)
        return Lease(cluster.name, machine, tuple(range(compute.gpus)), None,
                     str(self.known_hosts(cluster, instance_id)), itype_name, itype.price_per_hour if itype else 0.0)

    def claim(self, ssh: Any, cluster: Cluster, compute: CloudCompute, lease: Lease, owner: str) -> Optional[Lease]:
        """Connected with the host key from the user data: replace it over this verified connection (that copy
        is readable by anyone who may describe the instance) and pin the new one."""
        private, public = new_host_key()
        sudo = "" if lease.machine.user == "root" else "sudo -n "
        # Run as root where the login user is not (root may log in directly; the fake cloud's hosts do).
        prefix = f'if [ "$(id -u)" = 0 ]; then python3 -; else {sudo}python3 -; fi'
        script = REPLACE_HOST_KEY + f"\nmain({private!r}, {public!r})\n"  # the key travels on stdin, not argv
        ssh.check(prefix, "replacing the host key", stdin=script.encode())
        assert lease.known_hosts is not None
        parts = public.split()
        store.write_private(Path(lease.known_hosts), f"{lease.machine.address} {parts[0]} {parts[1]}\n")
        return lease

    def idle_delay(self, cluster: Cluster, compute: CloudCompute) -> Optional[float]:
        """After a work's last call ends: stop a GPU instance at once; any other after its idle_timeout."""
        if compute.idle_timeout is not None:
            return float(compute.idle_timeout)
        return 0.0 if compute.gpus else None

    def release(self, cluster: Cluster, lease: Lease) -> None:
        """The work is done: stop its instance (its disk stays; a new call starts it again)."""
        ec2 = self.session(cluster).client("ec2")
        with mapped_errors(f"stopping {lease.machine.id}"):
            settle(ec2, "stop_instances", [lease.machine.id])

    def terminate(self, cluster: Cluster, lease: Lease) -> None:
        ec2 = self.session(cluster).client("ec2")
        with mapped_errors(f"terminating {lease.machine.id}"):
            settle(ec2, "terminate_instances", [lease.machine.id])
        self.known_hosts(cluster, lease.machine.id).unlink(missing_ok=True)

    def poweroff_command(self, cluster: Cluster, machine: Machine) -> Optional[list[str]]:
        # The orphaned agent stops its own instance (InstanceInitiatedShutdownBehavior=stop).
        return ["sh", "-c", 'if [ "$(id -u)" = 0 ]; then shutdown -h now; else sudo -n shutdown -h now; fi']

    def list_running(self, cluster: Cluster) -> list[Machine]:
        from .cluster import running_instances

        return [Machine(i["InstanceId"], self.address(i), self.ssh_user(0), state=i["State"]["Name"],
                        internal_address=self.internal_address(i))
                for i in running_instances(cluster, self.session(cluster))]

    def delete(self, cluster: Cluster, progress: Progress) -> None:
        from .cluster import delete

        delete(cluster, False, progress)

