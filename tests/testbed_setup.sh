#!/usr/bin/env bash
# Install what the multi-host test bed (tests/testbed.py) needs, without
# starting a system sshd on this machine.  Idempotent; run as root.
#
#   bash tests/testbed_setup.sh
#
# Installs: openssh-server, openssh-client, iproute2, procps, util-linux,
# python3 (Debian's /usr/bin/python3: the fake hosts hide /root, so a pyenv
# python under /root is not usable inside them), debootstrap and Debian's
# archive keyring (they build the fake cloud's OS image, which brings its own
# sudo and cloud-init: python -m tests.fakecloud.image build), and Debian's
# chromium and chromedriver (the dashboard's tests drive them headless).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "testbed_setup.sh: must run as root" >&2
    exit 1
fi

need_install=0
for f in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/sbin/ip /usr/bin/ps \
         /usr/bin/unshare /usr/bin/nsenter /usr/bin/python3 /usr/sbin/debootstrap \
         /usr/bin/chromium /usr/bin/chromedriver; do
    if [ ! -x "$f" ] && [ ! -x "/bin/${f##*/}" ] && [ ! -x "/sbin/${f##*/}" ]; then
        need_install=1
    fi
done

sshd_pid() {
    # pid of a system sshd (from its pidfile) if one runs, else nothing
    local pid
    pid="$(cat /run/sshd.pid 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = /usr/sbin/sshd ]; then
        echo "$pid"
    fi
}

# Hosts build venvs for apps' requirements.txt with Debian's python3: it needs python3-venv.
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    need_install=1
fi

if [ "$need_install" = 1 ]; then
    sshd_before="$(sshd_pid)"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Tell invoke-rc.d not to start any service during the install.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() {
        if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    }
    trap cleanup_policy EXIT
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        openssh-server openssh-client iproute2 procps util-linux python3 python3-venv debootstrap \
        debian-archive-keyring chromium chromium-driver
    cleanup_policy
    trap - EXIT

    # Make sure the install left no system sshd running in the root
    # namespace: stop one that was not running before it (by its pidfile;
    # the test bed's sshds have their own pidfiles and namespaces).
    sshd_after="$(sshd_pid)"
    if [ -n "$sshd_after" ] && [ "$sshd_after" != "$sshd_before" ]; then
        echo "testbed_setup.sh: stopping system sshd (pid $sshd_after) started by the install"
        kill "$sshd_after" || true
        rm -f /run/sshd.pid
    fi
    # Keep it from starting at boot on machines with an init system.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/ssh ]; then
        update-rc.d ssh disable >/dev/null 2>&1 || true
    fi
else
    echo "testbed_setup.sh: everything already installed"
fi

if [ -n "$(sshd_pid)" ]; then
    echo "testbed_setup.sh: note: a system sshd runs on this machine (pid $(sshd_pid)); the test bed does not use it"
fi
echo "testbed_setup.sh: ok"
