"""The ssh provider: clusters of hosts the user already has, reached over SSH. lit never powers these off."""

from __future__ import annotations

from ..base import Option, ProviderInfo

INFO = ProviderInfo(
    name="ssh",
    summary="hosts you already have, reached over SSH",
    factory="lit.provisioner.ssh.provider:SSHProvider",
    create_options=(
        Option("--hosts", "USER@ADDR[:PORT],... the hosts of the cluster."),
        Option("--key", "private key file (default ~/.ssh/id_ed25519)."),
        Option("--gpus", "GPUs the probe cannot see.", multiple=True, metavar="ADDR=N"),
        Option("--known-hosts", "pin host keys from this file instead of trusting on first use."),
    ),
)
