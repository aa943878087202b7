"""The fake cloud's EC2 instances are test-bed hosts that boot a Debian image configured by real cloud-init: SSH at
the private address with the user data's keys only, a disk that survives stop/start, power commands on the host
reach moto, terminate removes the host and its disk.

Everything goes through boto3 on an assumed role (as lit would), in a VPC and subnet made here (not lit's stack).
Needs root (the bridge, namespaces): skipped otherwise, but a failure when CI=true.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud import FakeCloud, fakecloud_fixture, requirement
from tests.fakecloud.amis import CPU_IMAGE_ID, GPU_IMAGE_ID
from tests.fakecloud.image import image_path
from tests.fakecloud.instances import power_action
from tests.fakecloud.machine import boot_times
from tests.fakecloud.motod import PUBLIC_CIDR
from tests.support import require
from tests.testbed import _netns_list, _same_process

ROLE_ARN = "arn:aws:iam::111122223333:role/lit-byoc"
EXTERNAL_ID = "lit-test-external-id"


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    require(requirement(), "the fake cloud")
    yield from fakecloud_fixture()


@pytest.fixture(scope="module")
def ec2(cloud: FakeCloud) -> Any:
    return cloud.client(cloud.session(ROLE_ARN, EXTERNAL_ID), "ec2")


def keygen(path: Path, comment: str) -> tuple[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.read_text(), path.with_name(path.name + ".pub").read_text().strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("keys")
    _, client_pub = keygen(d / "client", "lit-client")
    keygen(d / "other", "someone-else")
    host_private, host_public = keygen(d / "host", "the-instance")
    return {"dir": d, "client": d / "client", "client_pub": client_pub, "other": d / "other",
            "host_private": host_private, "host_public": host_public}


def user_data(keys: dict[str, Any]) -> str:
    """The user data lit itself sends (so real cloud-init reads exactly what a real instance would get)."""
    from lit.provisioner.aws.provider import user_data as lit_user_data

    return lit_user_data(keys["client_pub"], keys["host_private"], keys["host_public"])


@pytest.fixture(scope="module")
def subnet(ec2: Any) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/20")["Subnet"]["SubnetId"])


@pytest.fixture(scope="module")
def instance(cloud: FakeCloud, ec2: Any, subnet: str, keys: dict[str, Any]) -> dict[str, Any]:
    """One instance, its host and how long after run_instances its SSH answered."""
    t0 = time.monotonic()
    made = ec2.run_instances(ImageId=CPU_IMAGE_ID, InstanceType="t3.medium", MinCount=1, MaxCount=1,
                             SubnetId=subnet, UserData=user_data(keys))["Instances"][0]
    host = cloud.wait_host(made["InstanceId"], timeout=60)
    elapsed = time.monotonic() - t0
    print(f"instance {made['InstanceId']} at {made['PrivateIpAddress']}: SSH answers {elapsed:.2f}s after "
          f"run_instances; cloud-init's stages took {boot_times(host.dir)}")
    known_hosts = keys["dir"] / "known_hosts"
    known_hosts.write_text(f"{made['PrivateIpAddress']} {keys['host_public']}\n")
    return {"id": made["InstanceId"], "ip": made["PrivateIpAddress"], "host": host, "known_hosts": known_hosts}


def ssh(instance: dict[str, Any], keys: dict[str, Any], command: str, *, user: str = "ubuntu",
        key: Any = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-F", "/dev/null", "-i", str(key or keys["client"]), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={instance['known_hosts']}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"{user}@{instance['ip']}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def state(ec2: Any, instance_id: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"])


def wait(pred: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - t0


# ----- no cloud needed
def test_power_commands() -> None:
    assert power_action("shutdown -h now") == ("stop", 0.0)
    assert power_action("shutdown -r +5") == ("reboot", 300.0)
    assert power_action("shutdown -c") == ("cancel", 0.0)
    assert power_action("systemctl poweroff") == ("stop", 0.0)
    assert power_action("halt") == ("stop", 0.0)
    assert power_action("systemctl status") is None


# ----- the cloud
def test_images_are_found_by_name_and_owner(ec2: Any) -> None:
    def newest(owner: str, pattern: str) -> dict[str, Any]:
        images = ec2.describe_images(Owners=[owner], Filters=[{"Name": "name", "Values": [pattern]}])["Images"]
        assert len(images) == 2, images
        return max(images, key=lambda i: i["CreationDate"])

    gpu = newest("amazon", "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *")
    assert gpu["ImageId"] == GPU_IMAGE_ID
    assert gpu["Name"] == "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261101"
    cpu = newest("099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-*")
    assert cpu["ImageId"] == CPU_IMAGE_ID
    assert cpu["Name"] == "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-20261101"
    assert cpu["OwnerId"] == "099720109477" and cpu.get("ImageOwnerAlias") is None


def test_running_instance_is_a_host_with_the_user_data_keys(instance: dict[str, Any], keys: dict[str, Any],
                                                              cloud: FakeCloud) -> None:
    host = instance["host"]
    assert host.address == instance["ip"] and instance["ip"].startswith("10.77.")
    assert cloud.hosts_for_instances()[instance["id"]].address == instance["ip"]
    # strict host key checking against the user data's host key only; the user data's client key; "ubuntu" is not
    # root, as on Ubuntu's images, and may use sudo without a password; no default route
    done = ssh(instance, keys, "hostname; id -un; echo $HOME; sudo -n id -u; ip -4 route show default | wc -l")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ip-" + instance["ip"].replace(".", "-"), "ubuntu", "/home/ubuntu", "0", "0"]
    assert done.stderr == ""  # sudo resolves the host name (cloud-init's /etc/hosts)
    # root may not log in (cloud-init's disable_root, as on Ubuntu's images): the key works, the session refuses
    root = ssh(instance, keys, "id -u", user="root")
    assert root.returncode == 142 and 'Please login as the user "ubuntu"' in root.stdout, (root.stdout, root.stderr)
    # no other key: not someone else's, not the bed's own
    assert ssh(instance, keys, "true", key=keys["other"]).returncode == 255
    assert cloud.bed is not None
    assert ssh(instance, keys, "true", key=cloud.bed.key_path).returncode == 255
    # the host key presented is exactly the user data's
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", instance["ip"]], capture_output=True, text=True,
                             timeout=10).stdout.split()
    assert scanned[1:3] == keys["host_public"].split()[:2]


def test_public_address_reached_from_this_machine_only_private_one_from_instances(
        cloud: FakeCloud, ec2: Any, subnet: str, keys: dict[str, Any]) -> None:
    """An instance's public address comes from the range that plays the internet, and only this machine (the
    operator's side) reaches it; the other instances reach it at its private address only, as in AWS where the
    cluster's security group admits cluster traffic by private address."""
    made = ec2.run_instances(ImageId=CPU_IMAGE_ID, InstanceType="t3.medium", MinCount=2, MaxCount=2,
                             NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet,
                                                 "AssociatePublicIpAddress": True}],
                             UserData=user_data(keys))["Instances"]
    ids = [m["InstanceId"] for m in made]
    try:
        a = cloud.wait_host(ids[0], timeout=15)
        cloud.wait_host(ids[1], timeout=15)
        described = {i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
                     for i in r["Instances"]}
        private, public = described[ids[1]]["PrivateIpAddress"], described[ids[1]]["PublicIpAddress"]
        assert ipaddress.ip_address(public) in ipaddress.ip_network(PUBLIC_CIDR) and private.startswith("10.77.")

        def banner(address: str) -> str:
            with contextlib.suppress(OSError), socket.create_connection((address, 22), timeout=2) as sock:
                return sock.recv(4).decode(errors="replace")
            return ""

        wait(lambda: banner(public) == "SSH-", 5, f"this machine to reach {public}")
        on_b = {**made[1], "ip": public, "known_hosts": keys["dir"] / "known_hosts_public"}
        on_b["known_hosts"].write_text(f"{public} {keys['host_public']}\n")
        done = ssh(on_b, keys, "hostname", user="ubuntu")
        assert done.stdout.strip() == "ip-" + private.replace(".", "-"), done.stderr

        def from_a(address: str) -> subprocess.CompletedProcess[str]:
            return a.exec(["timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{address}/22 && head -c 4 <&3"])

        assert from_a(private).stdout == "SSH-"
        refused = from_a(public)
        assert refused.returncode != 0 and refused.stdout == "", (refused.stdout, refused.stderr)
        assert "unreachable" in refused.stderr.lower(), refused.stderr
        # a stopped instance has no public address; started again it has a new one
        ec2.stop_instances(InstanceIds=[ids[1]])
        wait(lambda: subprocess.run(["ip", "route", "get", public], capture_output=True).returncode != 0, 10,
             f"{public} to be unreachable once its instance stopped")
        ec2.start_instances(InstanceIds=[ids[1]])
        again = ec2.describe_instances(InstanceIds=[ids[1]])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
        assert again != public and ipaddress.ip_address(again) in ipaddress.ip_network(PUBLIC_CIDR)
        wait(lambda: banner(again) == "SSH-", 10, f"this machine to reach {again}")
    finally:
        ec2.terminate_instances(InstanceIds=ids)
        for i in ids:
            cloud.wait_no_host(i, timeout=10)
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    assert public not in routes and again not in routes, routes
    probe = subprocess.run(["ip", "route", "get", PUBLIC_CIDR.replace("0.0/16", "250.250")], capture_output=True,
                           text=True)
    assert probe.returncode != 0 and "no route to host" in probe.stderr.lower(), (probe.stdout, probe.stderr)


def test_the_instance_boots_the_image_configured_by_cloud_init(instance: dict[str, Any], keys: dict[str, Any],
                                                                cloud: FakeCloud) -> None:
    host = cloud.hosts_for_instances()[instance["id"]]
    image = image_path()

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return host.exec(["sh", "-c", command])  # inside the instance: its own root filesystem

    # the image's python3 (Debian's 3.11) as on a stock image: no ensurepip, so no `python3 -m venv` with pip
    done = run("command -v python3; python3 -c 'import sys; print(sys.version_info[:2])'; "
               "python3 -c 'import ensurepip'")
    assert done.stdout.split("\n")[:2] == ["/usr/bin/python3", "(3, 11)"], (done.stdout, done.stderr)
    assert done.returncode != 0 and "No module named 'ensurepip'" in done.stderr
    # cloud-init ran, from the NoCloud seed, for this instance id
    done = run("cloud-init status --wait | tail -n 1; readlink /var/lib/cloud/instance; ls /var/lib/cloud/instance; "
               "cat /var/lib/cloud/seed/nocloud/meta-data")
    assert done.stdout.splitlines()[0] == "status: done", (done.stdout, done.stderr)
    assert done.stdout.splitlines()[1] == f"/var/lib/cloud/instances/{instance['id']}"
    assert {"boot-finished", "sem", "user-data.txt"} <= set(done.stdout.split())
    assert f"instance-id: {instance['id']}" in done.stdout
    # lit's user data is valid by cloud-init's own schema, and cloud-init warned of nothing in it
    done = run("cloud-init schema --config-file /var/lib/cloud/instance/user-data.txt; "
               "grep -E 'WARNING.*(schema|cloud-config|ssh_)' /var/log/cloud-init.log || true")
    assert done.stdout.strip() == "Valid cloud-config: /var/lib/cloud/instance/user-data.txt", (done.stdout,
                                                                                                 done.stderr)
    # the default user exists because cloud-init made it: not in the image, on the instance's disk, with its sudo rule
    assert ":ubuntu:" not in "\n".join(":" + line for line in (image / "etc/passwd").read_text().splitlines())
    assert not (image / "etc/sudoers.d/90-cloud-init-users").exists()
    assert (host.dir / "disk/upper/etc/passwd").read_text().count("\nubuntu:") == 1
    done = run("getent passwd ubuntu; cat /etc/sudoers.d/90-cloud-init-users; cat /home/ubuntu/.ssh/authorized_keys")
    assert done.stdout.startswith("ubuntu:x:1000:")
    assert "Created by cloud-init" in done.stdout and "ubuntu ALL=(ALL) NOPASSWD:ALL" in done.stdout
    assert keys["client_pub"] in done.stdout
    # the host keys are the user data's, and no other (ssh_deletekeys; with ssh_keys cc_ssh generates none)
    done = run("ls /etc/ssh/ | grep ssh_host_; cat /etc/ssh/ssh_host_ed25519_key.pub")
    assert done.stdout.splitlines()[:2] == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert done.stdout.splitlines()[2].split()[:2] == keys["host_public"].split()[:2]
    # apt has no source (nothing installs packages at boot; there is no route out)
    assert run("cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^#'").stdout.strip() == ""
    # nothing of this machine inside: the root is the overlay, the other mounts are the boot's own
    mounts = [line.split() for line in run("cat /proc/self/mounts").stdout.splitlines()]
    assert [m[2] for m in mounts if m[1] == "/"] == ["overlay"]
    allowed = {"/", "/proc", "/proc/sys", "/sys", "/dev", "/run", "/tmp", "/run/lit-testbed/events",
               "/usr/sbin/shutdown", "/usr/sbin/poweroff", "/usr/sbin/halt", "/usr/sbin/reboot", "/usr/sbin/telinit",
               "/usr/bin/systemctl"}
    assert [m[1] for m in mounts if m[1] not in allowed and not m[1].startswith("/dev/")] == []
    assert run(f"test -e {host.dir} || test -e {image} || echo hidden").stdout.strip() == "hidden"
    # an ssh session (and sudo in it) has no CAP_SYS_ADMIN (21) or CAP_NET_ADMIN (12): no mount, no way out
    bounding = int(ssh(instance, keys, "sudo -n grep CapBnd /proc/self/status").stdout.split()[1], 16)
    assert not bounding & (1 << 21) and not bounding & (1 << 12)
    # its init ignores what would end a real init too
    run("kill -TERM 1; kill -INT 1; kill -HUP 1")
    time.sleep(0.3)
    assert _same_process(host.init_pid, host.init_start) and host.tcp_reachable()
    print(f"cloud-init's stages: {boot_times(host.dir)}")


def test_stop_start_keeps_the_disk_and_ends_processes(instance: dict[str, Any], keys: dict[str, Any], ec2: Any,
                                                      cloud: FakeCloud) -> None:
    done = ssh(instance, keys, "echo kept > /home/ubuntu/disk.txt; echo gone > /tmp/tmp.txt; "
                               "stat -c %Y /var/lib/cloud/instance/sem/config_ssh; "
                               "setsid nohup sleep 1000 >/dev/null 2>&1 < /dev/null & echo started")
    assert done.stdout.split()[1] == "started", done.stderr
    ssh_module_ran = done.stdout.split()[0]
    host = instance["host"]
    assert any("sleep 1000" in cmd for _, cmd in host.processes())

    ec2.stop_instances(InstanceIds=[instance["id"]])
    wait(lambda: not cloud.hosts_for_instances()[instance["id"]].powered_on, 5, "the host to power off")
    assert not host.tcp_reachable()
    assert host.processes() == [] and cloud.hosts_for_instances()[instance["id"]].pids() == []  # no process left

    ec2.start_instances(InstanceIds=[instance["id"]])
    cloud.wait_host(instance["id"], timeout=60)
    done = ssh(instance, keys, "cat /home/ubuntu/disk.txt; ls /tmp; pgrep -x sleep || echo none; "
                               "stat -c %Y /var/lib/cloud/instance/sem/config_ssh; "
                               "cloud-init status --wait | tail -n 1")
    assert done.stdout.split() == ["kept", "none", ssh_module_ran, "status:", "done"], (done.stdout, done.stderr)
    # cloud-init ran again (its per-instance modules, as ssh's above, did not: same instance id)
    assert [stage for stage, _ in boot_times(host.dir)].count("init --local") == 2


def test_reboot_on_the_host_boots_it_again(instance: dict[str, Any], keys: dict[str, Any], ec2: Any,
                                           cloud: FakeCloud) -> None:
    host = instance["host"]
    boots = [stage for stage, _ in boot_times(host.dir)].count("init --local")
    ssh(instance, keys, "sudo -n reboot")
    wait(lambda: [stage for stage, _ in boot_times(host.dir)].count("init --local") == boots + 1, 30,
         "cloud-init to run again")
    cloud.wait_host(instance["id"], timeout=60)
    assert state(ec2, instance["id"]) == "running"
    done = ssh(instance, keys, "cat /home/ubuntu/disk.txt; cloud-init status --wait | tail -n 1")
    assert done.stdout.split() == ["kept", "status:", "done"], (done.stdout, done.stderr)


def test_shutdown_on_the_host_stops_the_instance(instance: dict[str, Any], keys: dict[str, Any], ec2: Any,
                                                 cloud: FakeCloud) -> None:
    assert state(ec2, instance["id"]) == "running"
    t0 = time.monotonic()
    ssh(instance, keys, "sudo -n shutdown -h now")  # as lit's poweroff_command
    wait(lambda: state(ec2, instance["id"]) == "stopped", 2.0, "moto to show the instance stopped")
    print(f"shutdown -h now over ssh -> stopped in moto {time.monotonic() - t0:.2f}s after the ssh started")
    wait(lambda: not cloud.hosts_for_instances()[instance["id"]].powered_on, 5, "the host to power off")
    assert not instance["host"].tcp_reachable()


def test_terminate_removes_the_host(instance: dict[str, Any], ec2: Any, cloud: FakeCloud) -> None:
    host = cloud.hosts_for_instances()[instance["id"]]
    # stopped (by the shutdown above): no process, but its network namespace and its disk are there
    assert not host.powered_on and host.netns in _netns_list()
    assert (host.dir / "disk/upper/home/ubuntu/disk.txt").read_text() == "kept\n"
    ec2.terminate_instances(InstanceIds=[instance["id"]])
    cloud.wait_no_host(instance["id"], timeout=10)
    assert host.netns not in _netns_list()
    assert host.pids() == []
    assert not host.dir.exists()
    assert not Path(f"/sys/class/net/{host.peer}").exists()


def test_addresses_of_lit_vpcs_without_a_host_never_leave_this_machine(cloud: FakeCloud) -> None:
    """lit connects as soon as moto says an instance runs, maybe before its host is up: such a packet fails here
    (unreachable) instead of going out by the default route."""
    from lit.stacks import VPC_CIDR

    probe = VPC_CIDR.replace("0.0/16", "250.250")  # no subnet of the stack, no host: only the guard covers it
    shown = subprocess.run(["ip", "route", "get", probe], capture_output=True, text=True)
    assert shown.returncode != 0 and "no route to host" in shown.stderr.lower(), (shown.stdout, shown.stderr)
    routes = subprocess.run(["ip", "route", "show", "type", "unreachable"], capture_output=True, text=True).stdout
    assert VPC_CIDR in routes
