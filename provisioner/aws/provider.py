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
from lit.runtime.errors import BadInput, InfrastructureError, LitError

from .. import store
from ..base import Cluster, Created, Lease, Listing, Machine, ObjectStore, Options, Progress, Provider
from ..hostscript import source
from ..retry import retry
from ..sshconn import key_from_line, known_hosts_line, public_key
from . import catalog
from . import cluster as clusters
from .cloudinit import new_host_key, user_data
from .instances import cluster_session, running_instances, settle
from .session import ROLE_ARN, RoleSession, boto3_module, emulated, is_private_host, mapped_errors

CAPACITY_ERRORS = frozenset({"InsufficientInstanceCapacity", "Unsupported", "InsufficientHostCapacity",
                             "InsufficientCapacity"})
QUOTA_ERRORS = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded"})
# How long RunInstances is retried while EC2 does not see the cluster's new instance profile. IAM is eventually
# consistent ("changes ... take time to become visible", IAM user guide: troubleshooting, "Changes that I make are
# not always immediately visible"); reports of EC2 not seeing a new profile go past two minutes.
PROFILE_PROPAGATION_SECONDS = 300.0


def refuse_public_under_emulator(instance_id: str, address: str) -> None:
    """Against an emulator (AWS_ENDPOINT_URL set) lit connects to private and loopback addresses only: the addresses
    an emulator hands out are made up, and a public one may be anybody's machine on the internet."""
    endpoint = emulated()
    if endpoint is not None and not is_private_host(address):
        raise InfrastructureError(f"{instance_id}: the emulator at {endpoint} gave it the address {address}, which "
                                  "is not private: lit connects to private addresses only against an emulator")


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


class AWSProvider(Provider):
    name = "aws"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, RoleSession] = {}
        self._images: dict[tuple[str, catalog.ImageSpec], tuple[str, str, int]] = {}

    # -- sessions and lookups ---------------------------------------------------------------------
    def session(self, cluster: Cluster) -> RoleSession:
        with self._lock:
            if cluster.name not in self._sessions:
                self._sessions[cluster.name] = cluster_session(cluster)
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
                progress: Progress, app: str = "", made: Optional[Callable[[Lease], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None) -> Optional[Lease]:
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

        def not_visible_yet(exc: BaseException) -> bool:
            if not isinstance(exc, botocore.exceptions.ClientError):
                return False
            error = exc.response.get("Error", {})
            return error.get("Code") == "InvalidParameterValue" and "iamInstanceProfile" in error.get("Message", "")

        def waiting(delay: float) -> None:
            progress("the cluster's instance profile is not visible to EC2 yet (IAM propagates in seconds); "
                     f"asking again in {delay:.0f} s")
            time.sleep(delay)

        try:
            return retry(lambda: ec2.run_instances(**params), retry_if=not_visible_yet, first_delay=1.0,
                         max_delay=8.0, deadline=time.monotonic() + PROFILE_PROPAGATION_SECONDS, sleep=waiting)
        except botocore.exceptions.ClientError as exc:
            if not not_visible_yet(exc):
                raise
            raise InfrastructureError(
                f"{where}: EC2 still does not see the cluster's instance profile "
                f"{params['IamInstanceProfile']['Name']} after {PROFILE_PROPAGATION_SECONDS:.0f} s "
                f"({exc.response['Error'].get('Message', '')}); check that the cluster's stack is complete "
                "(lit list clusters) and try again") from None

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
        """Pin the host key lit made for a new instance, under its id until it has an address."""
        line = known_hosts_line(Machine(instance_id, instance_id, ""), public_key(host_public))
        store.write_private(self.known_hosts(cluster, instance_id), f"# {instance_id}\n{line}\n")

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
        pinned = key_from_line(key_line)
        store.write_private(path, known_hosts_line(Machine(instance_id, address, ""), pinned) + "\n")
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
        # the key travels on stdin, not argv
        script = source("lit.provisioner.aws.host.replace_host_key") + f"\nmain({private!r}, {public!r})\n".encode()
        ssh.check(prefix, "replacing the host key", stdin=script)
        assert lease.known_hosts is not None
        store.write_private(Path(lease.known_hosts), known_hosts_line(lease.machine, public_key(public)) + "\n")
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
        return [Machine(i["InstanceId"], self.address(i), self.ssh_user(0), state=i["State"]["Name"],
                        internal_address=self.internal_address(i))
                for i in running_instances(cluster, self.session(cluster))]

    def object_store(self, cluster: Cluster, run_id: str) -> Optional[ObjectStore]:
        """The cluster's bucket, reached by works through presigned URLs (machines hold no AWS credentials)."""
        from .objectstore import S3ObjectStore

        bucket = (cluster.settings.get("outputs") or {}).get("bucket")
        if not bucket:
            return None
        return S3ObjectStore(self.session(cluster).client("s3"), bucket, run_id)

    def leftover_hint(self, cluster: Cluster, machine_ids: list[str]) -> str:
        return (f"Remove them with `lit delete cluster {cluster.name} --yes`, or "
                f"`aws ec2 terminate-instances --instance-ids {' '.join(machine_ids)}`")

    # -- clusters -----------------------------------------------------------------------------------
    def create(self, name: str, options: Options, orphan_timeout: float, progress: Progress) -> Created:
        role_arn = options.get("role_arn")
        if not role_arn:
            raise BadInput("--role-arn is required for --provider aws (see `lit cluster policy`)")
        created = clusters.create(name, role_arn, options.get("external_id"), options.get("region"),
                                  options.get("ssh_cidr"), orphan_timeout, tuple(options.get("work_policy_arn") or ()),
                                  progress)
        return Created(created, f"in {created.settings['region']}")

    def update(self, cluster: Cluster, options: Options, progress: Progress) -> str:
        updated = clusters.update(cluster.name, options.get("ssh_cidr"), progress)
        return f"SSH to its machines from {updated.settings['ssh_cidr']}"

    def delete(self, cluster: Cluster, options: Options, progress: Progress) -> None:
        clusters.delete(cluster, bool(options.get("delete_data")), progress)

    def describe(self, cluster: Cluster) -> Listing:
        try:
            machines = f"{len(running_instances(cluster))} instances"
        except LitError as exc:
            machines = f"? ({exc})"
        return Listing(cluster.settings.get("region", "?"), machines)

    def policy(self, options: Options) -> list[tuple[str, Any]]:
        """The role's permissions and trust policies, in its partition, for the account lit runs from."""
        role_arn, account = options.get("role_arn"), options.get("account")
        partition = None
        if role_arn is not None:
            match = ROLE_ARN.match(role_arn)
            if not match:
                raise BadInput(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
            partition = match["partition"]
        if account is None:
            try:
                identity = boto3_module().client("sts").get_caller_identity()
                account = identity["Account"]
                partition = partition or str(identity["Arn"]).split(":")[1]
            except Exception:  # not logged in (any botocore error, or no boto3): the placeholder is printed
                account = None
        permissions, trust = clusters.policies(options.get("external_id"), account, partition or "aws")
        return [("Permissions policy (attach to the role)", permissions),
                ("Trust policy (the role's trust relationship)", trust)]
