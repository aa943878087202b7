"""Run a Pulumi program under mocks whose Kubernetes objects are made for real through the API (one run per process).

    python -m tests.k8s.engine_run up|destroy --home LIT_HOME --stack NAME --program MODULE:ATTR --project NAME
        < config.json

The config (Pulumi keys, secrets included) comes on stdin, never on the command line; events go to stdout one per
line; a failure ends with a line "error: <message>" on stderr and exit status 1.

How (as tests/fakecloud/engine_run.py): `set_all_config`, `set_mocks` with a monitor that passes on each
registration's URN, the program inside the SDK's own driver. Each `pulumi:providers:kubernetes` registration
becomes an API client from its inputs (kubeconfig contents, a path to one, or the default; context); each
`kubernetes:*` object is applied with server-side apply through that client, as pulumi-kubernetes does:
- an object that exists but this stack did not make is refused ("already exists"), as pulumi-kubernetes refuses
  without upsertExistingObjects; the API server's own refusals (403, 422, ...) fail the run;
- what is made is recorded, in order, in <home>/k8s-stacks/<project>/<stack>.json (mode 0600) with no secret in
  it (the providers' secret inputs, e.g. the kubeconfig's contents, are left out);
- `up` again applies the same objects (idempotent; an interrupted up finishes the job) and deletes what the
  program no longer declares; `destroy` runs the program again only to make its providers' clients (the secrets
  come with the config, never from the file), deletes what was recorded, newest first, waits until each is gone,
  then removes the record.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

from ..stackengine import RecordFile, child_main, run_program

PROVIDER_TYPE = "pulumi:providers:kubernetes"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi/runtime/rpc.py: a secret, as the mock monitor hands it
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
FIELD_MANAGER = "lit-kube-engine"
DELETE_TIMEOUT = 120.0


class EngineError(Exception):
    """What the engine reports as the run's error (the API server's refusals included)."""


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    """The value with every secret wrapper removed (what is sent to the API server)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def api_error(exc: Exception, doing: str) -> EngineError:
    status, reason, body = getattr(exc, "status", None), getattr(exc, "reason", ""), getattr(exc, "body", "")
    message = ""
    try:
        message = json.loads(body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(body or "")[:500]
    return EngineError(f"{doing}: the API server answered {status} {reason}: {message or exc}")


# ----- the stack's record
class StackFile(RecordFile):
    def __init__(self, home: Path, project: str, stack: str) -> None:
        for part, what in ((project, "project"), (stack, "stack")):
            if not part or "/" in part or part.startswith("."):
                raise EngineError(f"invalid {what} name {part!r}")
        super().__init__(Path(home) / "k8s-stacks" / project, stack)

    def save(self, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / f".{self.path.stem}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


# ----- the API
class Cluster:
    """One provider's API client, from its inputs as pulumi-kubernetes reads them."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        from kubernetes import config, dynamic
        from kubernetes.client.exceptions import ApiException

        inputs = reveal(inputs)
        text = inputs.get("kubeconfig") or ""
        context = inputs.get("context") or None
        self.namespace = inputs.get("namespace") or "default"
        try:
            # As the provider: a value naming an existing file is a path, anything else the file's contents.
            if text and os.path.isfile(os.path.expanduser(text)):
                api = config.new_client_from_config(config_file=os.path.expanduser(text), context=context)
            elif text:
                import yaml

                api = config.new_client_from_config_dict(yaml.safe_load(text), context=context)
            else:
                api = config.new_client_from_config(context=context)
        except Exception as exc:  # the client raises ConfigException, ValueError, TypeError for a bad kubeconfig
            raise EngineError(f"the provider's kubeconfig cannot be used: {type(exc).__name__}: {exc}") from None
        self.server = api.configuration.host
        try:
            self.dynamic = dynamic.DynamicClient(api)  # reads the server's discovery documents
        except ApiException as exc:
            raise api_error(exc, f"reading the API of {self.server}") from None
        except Exception as exc:  # urllib3: refused, unreachable, TLS
            raise EngineError(f"cannot reach the API server {self.server}: {type(exc).__name__}: {exc}") from None

    def resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise EngineError(f"the API server {self.server} does not serve {api_version} {kind}: {exc}") from None

    def read(self, rec: dict[str, Any]) -> Optional[Any]:
        from kubernetes.client.exceptions import ApiException

        res = self.resource(rec["apiVersion"], rec["kind"])
        try:
            return res.get(name=rec["objectName"], namespace=rec["namespace"] if res.namespaced else None)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, f"reading {rec['kind']} {rec['objectName']}") from None

    def apply(self, rec: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        res = self.resource(rec["apiVersion"], rec["kind"])
        namespace = rec["namespace"] if res.namespaced else None
        try:
            made = res.server_side_apply(body=body, name=rec["objectName"], namespace=namespace,
                                         field_manager=FIELD_MANAGER, force_conflicts=False)
        except ApiException as exc:
            raise api_error(exc, f"applying {rec['kind']} {rec['objectName']}") from None
        return dict(made.to_dict())

    def delete(self, rec: dict[str, Any], emit: Callable[[str], None]) -> None:
        from kubernetes.client.exceptions import ApiException

        res = self.resource(rec["apiVersion"], rec["kind"])
        namespace = rec["namespace"] if res.namespaced else None
        try:
            res.delete(name=rec["objectName"], namespace=namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise api_error(exc, f"deleting {rec['kind']} {rec['objectName']}") from None
        deadline = time.monotonic() + DELETE_TIMEOUT
        while self.read(rec) is not None:  # finalizers, graceful deletion: gone only when the API says so
            if time.monotonic() > deadline:
                raise EngineError(f"{rec['kind']} {rec['objectName']} still there {DELETE_TIMEOUT:.0f} s after "
                                  "its deletion")
            time.sleep(0.2)
        emit(f"- {rec['type']} {rec['name']} {rec['id']}")


# ----- one run of the program
class Run:
    def __init__(self, file: StackFile, stack: str, mode: str, emit: Callable[[str], None]) -> None:
        self.file = file
        self.stack = stack
        self.mode = mode  # "up": make; "destroy": providers only
        self.emit = emit
        self.data: dict[str, Any] = file.load() or {"stack": stack, "resources": [], "outputs": None}
        self.records: dict[str, dict[str, Any]] = {r["urn"]: r for r in self.data["resources"]}
        self.clusters: dict[str, Cluster] = {}
        self.seen: set[str] = set()
        self.lock = threading.RLock()
        self.first_error: Optional[BaseException] = None
        self.made = self.reused = 0

    def save(self) -> None:
        self.file.save(self.data)

    def new_resource(self, typ: str, name: str, urn: str, inputs: dict[str, Any], provider: str,
                     custom: bool) -> tuple[str, dict[str, Any]]:
        with self.lock:
            try:
                return self._new_resource(typ, name, urn, inputs, provider, custom)
            except BaseException as exc:
                if self.first_error is None:
                    self.first_error = exc
                raise

    def _new_resource(self, typ: str, name: str, urn: str, inputs: dict[str, Any], provider: str,
                      custom: bool) -> tuple[str, dict[str, Any]]:
        if not custom:
            return "", {}
        if not urn:
            raise EngineError(f"the test engine cannot read an existing {typ} ({name}); only create resources")
        if typ == PROVIDER_TYPE:
            self.clusters[urn] = Cluster(inputs)
            return f"{name}-provider", {k: v for k, v in inputs.items() if not is_secret(v)}
        if not typ.startswith("kubernetes:"):
            raise EngineError(f"the test engine makes Kubernetes objects only, not {typ} ({name})")
        provider_urn = provider.rsplit("::", 1)[0] if provider else ""
        cluster = self.clusters.get(provider_urn)
        if cluster is None:
            raise EngineError(f"{typ} {name} has no explicit provider of this run (the default provider would use "
                              "whatever kubeconfig the environment has)")
        body = reveal(inputs)
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            raise EngineError(f"{typ} {name}: no metadata.name (lit names every object)")
        rec = self.records.get(urn) or {"urn": urn, "type": typ, "name": name, "status": "new"}
        rec.update(apiVersion=body["apiVersion"], kind=body["kind"], objectName=meta["name"],
                   namespace=meta.get("namespace") or cluster.namespace, provider=provider_urn)
        rec["id"] = f"{rec['namespace']}/{rec['objectName']}"
        self.seen.add(urn)
        if self.mode == "destroy":
            return rec["id"], body
        body["metadata"] = {**meta, "namespace": rec["namespace"]}
        was = rec.get("status")
        if was not in ("created", "pending") and cluster.read(rec) is not None:
            raise EngineError(f"{rec['kind']} {rec['id']} already exists and this stack did not make it "
                              "(pulumi-kubernetes refuses it too, unless upsertExistingObjects)")
        if was != "created":
            rec["status"] = "pending"  # recorded before the call: an interrupted up knows the object may be there
            self._track(rec)
            self.save()
        state = cluster.apply(rec, body)
        rec["status"] = "created"
        self._track(rec)
        self.save()
        if was == "created":
            self.reused += 1
        else:
            self.made += 1
        self.emit(f"{'=' if was == 'created' else '+'} {typ} {name} {rec['id']}")
        return rec["id"], state

    def _track(self, rec: dict[str, Any]) -> None:
        if rec["urn"] not in self.records:
            self.records[rec["urn"]] = rec
            self.data["resources"].append(rec)

    def delete(self, keep: set[str]) -> None:
        """Delete, newest first, every recorded object whose URN is not in `keep`."""
        for rec in reversed(list(self.data["resources"])):
            if rec["urn"] in keep:
                continue
            cluster = self.clusters.get(rec.get("provider") or "")
            if cluster is None:
                raise EngineError(f"{rec['type']} {rec['name']}: its provider was not registered by the program "
                                  "(cannot reach its cluster)")
            cluster.delete(rec, self.emit)
            self.data["resources"].remove(rec)
            self.records.pop(rec["urn"], None)
            self.save()


def _monitor_class() -> Any:
    from pulumi.runtime import mocks

    class Monitor(mocks.MockMonitor):
        """The SDK's mock monitor, passing on the URN MockResourceArgs leaves out."""

        local = threading.local()

        def RegisterResource(self, request: Any) -> Any:
            Monitor.local.urn = self.make_urn(request.parent, request.type, request.name)
            try:
                return super().RegisterResource(request)
            finally:
                Monitor.local.urn = None

    return Monitor


def run(mode: str, home: Path, stack: str, project: str, program_spec: str, config: dict[str, str],
        emit: Callable[[str], None] = print, secret_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the program once under mocks: `up` makes its objects, `destroy` deletes the recorded ones."""
    from pulumi.runtime import mocks

    file = StackFile(home, project, stack)
    with file.lock():
        the_run = Run(file, stack, mode, emit)
        if mode == "destroy" and file.load() is None:
            return {}
        monitor_class = _monitor_class()

        class Mocks(mocks.Mocks):
            def new_resource(self, args: mocks.MockResourceArgs) -> tuple[Optional[str], dict[str, Any]]:
                urn = getattr(monitor_class.local, "urn", None) or ""
                return the_run.new_resource(args.typ, args.name, urn, args.inputs, args.provider or "",
                                            bool(args.custom))

            def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
                raise EngineError(f"the test engine does not answer the call {args.token}")

        the_mocks = Mocks()
        outputs = run_program(program_spec, config, list(secret_keys), the_mocks, monitor_class(the_mocks), project,
                              stack, lambda: the_run.first_error, EngineError)
        if mode == "destroy":
            the_run.delete(keep=set())
            file.remove()
            emit(f"stack {stack}: destroyed")
            return {}
        the_run.delete(keep=the_run.seen)  # what an earlier up made and the program no longer declares
        the_run.data.update(outputs=outputs, project=project, program=program_spec,
                            config={k: v for k, v in config.items() if k not in secret_keys})
        the_run.save()
        emit(f"stack {stack}: {the_run.made} made, {the_run.reused} unchanged, {len(outputs)} outputs")
        return outputs


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.k8s.engine_run")
    ap.add_argument("command", choices=["up", "destroy"])
    ap.add_argument("--home", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--project", required=True)
    ap.add_argument("--secret-key", action="append", default=[])
    args = ap.parse_args(argv)
    return child_main(lambda config, emit: run(args.command, Path(args.home), args.stack, args.project, args.program,
                                               config, emit, tuple(args.secret_key)), EngineError)


if __name__ == "__main__":
    sys.exit(main())
