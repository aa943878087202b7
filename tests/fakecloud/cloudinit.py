"""What a fake instance takes from its user data, as cloud-init would on first boot: SSH keys only.

User data (already base64-decoded; gzip is undone here) that starts with ``#cloud-config`` is YAML; this reads

    ssh_authorized_keys:            # root's (and the image user's) authorized keys
      - ssh-ed25519 AAAA... someone
    users:                          # each user's ssh_authorized_keys count too (the fake host has one account)
      - name: ubuntu
        ssh_authorized_keys: [...]
    ssh_keys:                       # the host keys sshd presents
      ed25519_private: |
        -----BEGIN OPENSSH PRIVATE KEY-----
        ...
      ed25519_public: ssh-ed25519 AAAA... host

with PyYAML when it is installed, else with a small parser of exactly this shape (top-level keys, lists of
strings, a mapping of plain and ``|`` block scalars). Anything else (shell scripts, MIME multipart) gives no keys.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any, Optional, Union

KEY_TYPES = ("ed25519", "rsa", "ecdsa")


@dataclass
class CloudConfig:
    authorized_keys: list[str] = field(default_factory=list)
    host_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (private, public)
    is_cloud_config: bool = False


def user_data_text(raw: Union[bytes, str, None]) -> str:
    if raw is None:
        return ""
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", "replace")


def parse(raw: Union[bytes, str, None]) -> CloudConfig:
    text = user_data_text(raw)
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    if first != "#cloud-config":
        return CloudConfig()
    doc = _load_yaml(text)
    out = CloudConfig(is_cloud_config=True)
    if not isinstance(doc, dict):
        return out

    def add_keys(keys: Any) -> None:
        if isinstance(keys, str):
            keys = [keys]
        for key in keys or []:
            if isinstance(key, str) and key.strip() and key.strip() not in out.authorized_keys:
                out.authorized_keys.append(key.strip())

    add_keys(doc.get("ssh_authorized_keys"))
    for user in doc.get("users") or []:
        if isinstance(user, dict):
            add_keys(user.get("ssh_authorized_keys"))
    keys = doc.get("ssh_keys")
    if isinstance(keys, dict):
        for key_type in KEY_TYPES:
            private, public = keys.get(f"{key_type}_private"), keys.get(f"{key_type}_public")
            if isinstance(private, str) and isinstance(public, str) and private.strip() and public.strip():
                out.host_keys[key_type] = (private.strip() + "\n", public.strip())
    return out


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        return parse_subset(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _scalar(value: str) -> Any:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("''", "'") if value[0] == "'" else inner.replace('\\"', '"').replace("\\\\", "\\")
    if value.startswith("[") and value.endswith("]"):
        return [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
    return value


def parse_subset(text: str) -> Optional[dict[str, Any]]:
    """The YAML subset of the module docstring (top-level keys; lists of strings; a mapping with `|` blocks)."""
    lines = text.splitlines()
    doc: dict[str, Any] = {}
    i = 0

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def skip(line: str) -> bool:
        return not line.strip() or line.lstrip().startswith("#")

    while i < len(lines):
        line = lines[i]
        if skip(line) or indent(line) > 0:
            i += 1
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            return None
        key, rest = key.strip(), rest.strip()
        i += 1
        if rest:
            doc[key] = _scalar(rest)
            continue
        # a block below: a list ("- x") or a mapping ("k: v" / "k: |")
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        while i < len(lines) and (skip(lines[i]) or indent(lines[i]) > 0):
            sub = lines[i]
            if skip(sub):
                i += 1
                continue
            stripped = sub.strip()
            if stripped.startswith("- ") or stripped == "-":
                items.append(_scalar(stripped[1:]))
                i += 1
                continue
            k, sep2, v = stripped.partition(":")
            if not sep2:
                return None
            v = v.strip()
            i += 1
            if v in ("|", "|-", "|+"):
                block: list[str] = []
                base = None
                while i < len(lines) and (not lines[i].strip() or indent(lines[i]) > indent(sub)):
                    if lines[i].strip():
                        base = indent(lines[i]) if base is None else min(base, indent(lines[i]))
                    block.append(lines[i])
                    i += 1
                body = "\n".join(b[base or 0:] for b in block).rstrip("\n")
                mapping[k.strip()] = body + ("" if v == "|-" else "\n")
            else:
                mapping[k.strip()] = _scalar(v)
        doc[key] = items if items else (mapping or None)
    return doc
