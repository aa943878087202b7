"""What an instance boots with: the host key lit makes for it, and the #cloud-config that installs it.

cloud-init reads user data starting `#cloud-config` as YAML (cloud-init docs, "User data formats: Cloud config
data"); it is written with `yaml.safe_dump`, so no key or value can break the document.
"""

from __future__ import annotations


def new_host_key() -> tuple[str, str]:
    """A fresh ed25519 key: (OpenSSH private key text, public key line). Also the cluster's SSH key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def user_data(authorized_key: str, host_private: str, host_public: str) -> str:
    """#cloud-config for cloud-init's cc_ssh: the default user's authorized key, and the host key lit made. With
    `ssh_keys` given, cc_ssh writes those and generates none (cloud-init docs, module "SSH": "If no host keys are
    specified using ssh_keys, then keys will be generated"); `ssh_genkeytypes: []` is refused by its schema."""
    import yaml

    config = {
        "ssh_authorized_keys": [authorized_key.strip()],
        "ssh_deletekeys": True,
        "ssh_keys": {"ed25519_private": host_private.strip() + "\n", "ed25519_public": host_public.strip()},
    }
    return "#cloud-config\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=False, width=4096)
