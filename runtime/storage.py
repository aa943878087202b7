"""Files between machines: `Path`, `Payload` and `Drive`, as in Lightning.

A work writes a file and publishes a `Path` to it as state. When its call ends, the agent hashes each file it
published (sha256) and makes it durable in the run's store; whoever receives the Path (as a run() argument or
through an attribute) finds the file on its own machine before its run() starts, checked by sha256.

Where the bytes go depends on the store the orchestrator hands the agent:
- local: one folder on this machine (hard links, no copy when the file system already has it);
- relay: kept on the producer's machine and streamed through the orchestrator's connections on demand;
- urls: an object store reached with short-lived presigned URLs the orchestrator makes (no credentials on the
  machine).

`Payload` carries any picklable value the same way (pickle: both ends run the user's own code on the user's own
machines). Runs on the agent's Python (3.9+, standard library only).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any, Optional, Protocol

from . import codec, context
from .errors import LitError
from .protocol import chunk_frame

CHUNK = 1024 * 1024


class TransferError(LitError):
    """A file could not be made present, or arrived corrupt."""


class Path(type(pathlib.Path())):  # type: ignore[misc]  # the concrete class (PosixPath) of this platform
    """A path to a file a work produced; others receive the file with it. Lightning's `L.storage.Path`."""

    _lit_origin: Optional[str] = None  # the work that produced it
    _lit_sha256: Optional[str] = None  # "" when the producer never wrote it
    _lit_size: int = 0

    @property
    def origin_name(self) -> str:
        return self._lit_origin or ""

    def exists_remote(self) -> bool:
        """Whether the producer published the file (it exists somewhere lit can fetch it from)."""
        return bool(self._lit_sha256)

    def get(self, overwrite: bool = False) -> None:
        """Make the file present here now (it normally is before run() starts)."""
        store = context.agent_store
        if store is None:
            raise TransferError(f"{self}: Path.get() works inside a work's run()")
        ensure_present(self, store, overwrite=overwrite)


def _path_to_json(path: Path) -> dict[str, Any]:
    origin = path._lit_origin
    if origin is None and context.agent_work is not None:
        origin = path._lit_origin = context.agent_work.name
    return {"path": str(path), "origin": origin, "sha256": path._lit_sha256, "size": path._lit_size}


def _path_from_json(data: dict[str, Any]) -> Path:
    path = Path(data["path"])
    path._lit_origin = data.get("origin")
    path._lit_sha256 = data.get("sha256")
    path._lit_size = int(data.get("size") or 0)
    return path


codec.register_type("path", Path, _path_to_json, _path_from_json)


class Payload:
    """Any picklable value one work publishes and another receives (`payload.value`), moved like a Path."""

    def __init__(self, value: Any = None) -> None:
        self._value = value
        self._loaded = value is not None
        self.path = Path(f"lit-payloads/{os.urandom(6).hex()}.pkl")

    @property
    def value(self) -> Any:
        if not self._loaded:
            store = context.agent_store
            if store is None:
                raise TransferError(f"{self}: read payload.value inside a work's run() (pass it to the work)")
            ensure_present(self.path, store)
            import pickle

            with open(self.path, "rb") as fh:
                self._value = pickle.load(fh)  # the user's own value, from the user's own machine
            self._loaded = True
        return self._value

    def _write(self) -> None:
        import pickle

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "wb") as fh:
            pickle.dump(self._value, fh)

    def __repr__(self) -> str:
        return f"Payload({self.path}, origin={self.path.origin_name or '?'})"


def _payload_to_json(payload: Payload) -> dict[str, Any]:
    return _path_to_json(payload.path)


def _payload_from_json(data: dict[str, Any]) -> Payload:
    payload = Payload()
    payload.path = _path_from_json(data)
    return payload


codec.register_type("payload", Payload, _payload_to_json, _payload_from_json)


class Drive:
    """A store several works share: `Drive("lit://name")`, with put, get, list and delete."""

    def __init__(self, id: str) -> None:  # `id`: Lightning's argument name
        if not isinstance(id, str) or not id.startswith("lit://") or len(id) <= len("lit://"):
            raise ValueError(f"Drive id must look like 'lit://name', got {id!r}")
        self.id = id
        self.name = id[len("lit://"):]

    def _store(self) -> FileStore:
        store = context.agent_store
        if store is None:
            raise TransferError(f"{self.id}: a Drive is used inside a work's run()")
        return store

    def put(self, path: str) -> None:
        source = pathlib.Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"{self.id}: cannot put {path}: no such file")
        self._store().drive_put(self.name, _key(path), source)

    def get(self, path: str, overwrite: bool = True) -> None:
        target = pathlib.Path(path)
        if target.exists() and not overwrite:
            return
        self._store().drive_get(self.name, _key(path), target)

    def list(self, prefix: str = "") -> list[str]:
        """The drive's keys that start with `prefix` ("" or "." for all)."""
        while prefix.startswith("./"):
            prefix = prefix[2:]
        return sorted(self._store().drive_list(self.name, "" if prefix == "." else prefix.lstrip("/")))

    def delete(self, path: str) -> None:
        self._store().drive_delete(self.name, _key(path))

    def __repr__(self) -> str:
        return f"Drive({self.id!r})"


def _key(path: str) -> str:
    key = os.path.normpath(str(path)).lstrip("/")
    if key.startswith("..") or key in ("", "."):
        raise ValueError(f"Drive paths stay inside the drive: {path!r}")
    return key


codec.register_type("drive", Drive, lambda d: {"id": d.id}, lambda data: Drive(data["id"]))


class FileStore(Protocol):
    """Where an agent puts what its work published and gets what its inputs need."""

    def publish(self, file: pathlib.Path, sha256: str) -> None: ...

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None: ...

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None: ...

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None: ...

    def drive_list(self, drive: str, prefix: str) -> list[str]: ...

    def drive_delete(self, drive: str, key: str) -> None: ...


def partial_name(target: pathlib.Path, tag: object) -> pathlib.Path:
    """Where a file is written before it is renamed to `target`: hidden, and never taken for a user's file."""
    return target.with_name(f".{target.name}.lit-{tag}")


def _is_partial(name: str) -> bool:
    return name.startswith(".") and ".lit-" in name


def drive_keys(base: pathlib.Path, prefix: str) -> list[str]:
    """The keys of the files in a drive folder that start with `prefix` (partial uploads left out; a user's own
    dot-files are listed)."""
    found: list[str] = []
    if base.is_dir():
        for root, _, files in os.walk(base):
            for name in files:
                key = os.path.relpath(os.path.join(root, name), base)
                if not _is_partial(name) and key.startswith(prefix):
                    found.append(key)
    return sorted(found)


def chunk_frames(xfer: str, file: pathlib.Path) -> Iterator[bytes]:
    """The file as chunk frames of transfer `xfer`, read one chunk at a time (memory stays bounded)."""
    import base64

    with open(file, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield chunk_frame(xfer, base64.b64encode(block))


_hashed: dict[tuple[int, int, int, int], str] = {}  # (device, inode, size, mtime ns) -> sha256


def sha256_of(file: pathlib.Path) -> str:
    """The file's sha256; a file unchanged since it was last hashed (same inode, size and mtime) is not read again:
    a work called many times with the same large Path would otherwise hash it on every call."""
    st = os.stat(file)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _hashed:
        _hashed[key] = _read_sha256(file)
    return _hashed[key]


def _read_sha256(file: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def place(source: pathlib.Path, target: pathlib.Path) -> None:
    """Put `source`'s bytes at `target`: a hard link when the file system allows (no copy; received files are
    read-only links into the store: copy one before changing it), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    tmp = partial_name(target, os.getpid())
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def freeze(source: pathlib.Path, target: pathlib.Path) -> None:
    """Keep a published file's bytes as they are now: a copy (the producer may rewrite its file in place), made
    read-only; receivers get hard links to it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(target, os.getpid())
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, target)


class LocalStore:
    """Every work on this machine: one artifact folder and one drives folder."""

    def __init__(self, artifacts: str, drives: str) -> None:
        self.artifacts = pathlib.Path(artifacts)
        self.drives = pathlib.Path(drives)

    def publish(self, file: pathlib.Path, sha256: str) -> None:
        target = self.artifacts / sha256
        if not target.exists():
            freeze(file, target)

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None:
        source = self.artifacts / sha256
        if not source.exists():
            raise TransferError(f"{target.name}: {origin} published it but it is not in the store")
        place(source, target)

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None:
        target = self.drives / drive / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(target, os.getpid())
        shutil.copyfile(source, tmp)  # a copy: the work may change its file later; the drive keeps this one
        os.replace(tmp, target)

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None:
        source = self.drives / drive / key
        if not source.is_file():
            raise FileNotFoundError(f"lit://{drive}: no {key}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def drive_list(self, drive: str, prefix: str) -> list[str]:
        return drive_keys(self.drives / drive, prefix)

    def drive_delete(self, drive: str, key: str) -> None:
        target = self.drives / drive / key
        if not target.is_file():
            raise FileNotFoundError(f"lit://{drive}: no {key}")
        target.unlink()


def ensure_present(path: Path, store: FileStore, overwrite: bool = False) -> None:
    """Make the file a received Path names present here, with the producer's content (sha256)."""
    origin = path._lit_origin or "?"
    me = context.agent_work.name if context.agent_work is not None else None
    if origin == me:
        return
    short = origin[len("root."):] if origin.startswith("root.") else origin
    if path._lit_sha256 is None:
        raise TransferError(f"{path}: {short} has not published it yet (it is published when its call ends)")
    if path._lit_sha256 == "":
        raise TransferError(f"{path}: {short} never wrote this file (it published the Path, not the file)")
    target = pathlib.Path(path) if pathlib.Path(path).is_absolute() else pathlib.Path.cwd() / path
    if target.exists() and not overwrite and sha256_of(target) == path._lit_sha256:
        return
    store.fetch(path._lit_sha256, origin, target)
    got = sha256_of(target)
    if got != path._lit_sha256:
        target.unlink()
        raise TransferError(f"{path}: the copy from {short} is corrupt (sha256 {got[:12]}..., expected "
                            f"{path._lit_sha256[:12]}...)")


def paths_in(value: Any) -> list[Path]:
    """Every Path (and Payload path) inside a state value or call argument."""
    found: list[Path] = []
    if isinstance(value, Path):
        found.append(value)
    elif isinstance(value, Payload):
        found.append(value.path)
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(paths_in(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(paths_in(item))
    return found


def payloads_in(value: Any) -> list[Payload]:
    if isinstance(value, Payload):
        return [value]
    if isinstance(value, dict):
        return [p for item in value.values() for p in payloads_in(item)]
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in payloads_in(item)]
    return []
