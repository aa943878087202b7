"""Run a Pulumi program under mocks whose resources are made for real in moto (one run per process).

    python -m tests.fakecloud.engine_run up --home LIT_HOME --stack NAME  < config.json

The config (Pulumi keys, e.g. {"lit:clusterName": "demo", "aws:region": "us-east-1"}) comes on stdin; events go
to stdout one per line; a failure ends with a line "error: <message>" on stderr and exit status 1. The outputs
are recorded in the stack's state file (see stackfile.py).

How: `pulumi.runtime.set_all_config(config)`, then `pulumi.runtime.set_mocks(mocks, project, stack,
preview=False, monitor=...)` installs a mock resource monitor (no engine, no CLI) and a root Stack resource;
the program runs inside `run_pulumi_func` (the SDK's own driver: it waits for every outstanding RPC and output),
and the `pulumi.export`ed values are read back from the root Stack's `outputs` and awaited. Pulumi's runtime
state is global to the process (settings, the root resource), hence a fresh process per run.

The mock monitor calls `Mocks.new_resource` from a thread pool; every call here holds one lock, so resources are
made one at a time, each after the ones it depends on (their ids are its inputs), and recorded in that order.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from ..stackengine import child_main, run_program
from .aws import DEFAULT_REGION, MAKING, Endpoint, FakeCloudError, base_session, endpoint_from_env
from .resources import HANDLERS, PROVIDER_TYPE, Context, provider_context
from .stackfile import StackFile

PROGRAM = "lit.stacks.cluster:program"
PROJECT = "lit"


class Run:
    """One `up` of a stack: the state file's records, the providers' contexts, the mocks' callbacks."""

    def __init__(self, home: Path, stack: str, config: dict[str, str], emit: Callable[[str], None]) -> None:
        self.file = StackFile(home, stack)
        self.stack = stack
        self.config = config
        self.emit = emit
        self.endpoint = endpoint_from_env()
        self.region = config.get("aws:region") or DEFAULT_REGION
        self.data: dict[str, Any] = self.file.load() or {"stack": stack, "resources": [], "outputs": None}
        self.data["endpoint"] = self.endpoint
        self.records: dict[str, dict[str, Any]] = {r["urn"]: r for r in self.data["resources"]}
        self.seen: set[str] = set()
        self.lock = threading.RLock()
        self.contexts: dict[str, Context] = {}
        self.first_error: Optional[BaseException] = None
        self.made = self.reused = 0

    # ----- the state file
    def save(self) -> None:
        self.file.save(self.data)

    def _track(self, rec: dict[str, Any]) -> None:
        if rec["urn"] not in self.records:
            self.records[rec["urn"]] = rec
            self.data["resources"].append(rec)

    def _checkpoint(self, rec: dict[str, Any]) -> None:
        """Called by a handler just before it creates something: its chosen name survives an interruption."""
        if rec.get("status") != "created":
            rec["status"] = "pending"
        self._track(rec)
        self.save()

    # ----- providers
    def _context(self, provider_ref: str) -> Context:
        urn = provider_ref.rsplit("::", 1)[0] if provider_ref else ""
        if urn in self.contexts:
            return self.contexts[urn]
        if urn:  # a provider registered by an earlier run of this process only: not expected
            raise FakeCloudError(f"unknown provider {provider_ref}")
        if "" not in self.contexts:  # the default provider: the environment's own credentials, aws:region
            aws = Endpoint(base_session(self.region), self.endpoint, self.region)
            self.contexts[""] = Context(aws, aws.client("sts").get_caller_identity()["Account"], {})
        return self.contexts[""]

    # ----- mocks
    def new_resource(self, typ: str, name: str, urn: str, inputs: dict[str, Any], provider: str,
                     custom: bool, retain: bool) -> tuple[str, dict[str, Any]]:
        with self.lock:
            try:
                return self._new_resource(typ, name, urn, inputs, provider, custom, retain)
            except BaseException as exc:
                if self.first_error is None:
                    self.first_error = exc
                raise

    def _new_resource(self, typ: str, name: str, urn: str, inputs: dict[str, Any], provider: str,
                      custom: bool, retain: bool) -> tuple[str, dict[str, Any]]:
        if not custom:  # a component: nothing in the cloud
            return "", {}
        if not urn:  # ReadResource (Resource.get(...)) reaches new_resource without a registration
            raise FakeCloudError(f"the fake cloud cannot read an existing {typ} ({name}); only create resources")
        self.seen.add(urn)
        rec = self.records.get(urn)
        if rec is not None and rec.get("type") != typ:
            raise FakeCloudError(f"{urn} was recorded as {rec.get('type')}; a type change is not supported")
        if rec is None:
            rec = {"urn": urn, "type": typ, "name": name, "status": "new", "data": {}}
        rec["retain"] = bool(retain)
        was = rec.get("status")
        MAKING.what = typ
        if typ == PROVIDER_TYPE:
            self.contexts[urn] = provider_context(inputs, self.endpoint, self.region)
            rid, state = rec.get("id") or str(uuid.uuid4()), dict(inputs)
        else:
            entry = HANDLERS.get(typ)
            if entry is None:
                raise FakeCloudError(f"the fake cloud cannot make {typ} ({name}): add a handler to "
                                     "tests/fakecloud/resources.py")
            ctx = self._context(provider)
            ctx.checkpoint = lambda: self._checkpoint(rec)
            rec["provider"] = provider.rsplit("::", 1)[0] if provider else ""
            rid, state = entry[0](ctx, inputs, rec)
        rec.update(status="created", id=rid, state=state)
        self._track(rec)
        self.save()
        if was == "created":
            self.reused += 1
        else:
            self.made += 1
        if typ != PROVIDER_TYPE:
            self.emit(f"{'=' if was == 'created' else '+'} {typ} {name} {rid}")
        return rid, state

    def call(self, token: str, args: dict[str, Any], provider: str) -> dict[str, Any]:
        with self.lock:
            try:
                return self._call(token, args, provider)
            except BaseException as exc:
                if self.first_error is None:
                    self.first_error = exc
                raise

    def _call(self, token: str, args: dict[str, Any], provider: str) -> dict[str, Any]:
        MAKING.what = token
        ctx = self._context(provider)
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            filters = [{"Name": f["name"], "Values": f["values"]} for f in args.get("filters") or []]
            if args.get("state"):
                filters.append({"Name": "state", "Values": [args["state"]]})
            zones = ctx.client("ec2").describe_availability_zones(
                Filters=filters, AllAvailabilityZones=bool(args.get("allAvailabilityZones")))["AvailabilityZones"]
            zones = [z for z in zones if z["ZoneName"] not in (args.get("excludeNames") or [])
                     and z.get("ZoneId") not in (args.get("excludeZoneIds") or [])]
            zones.sort(key=lambda z: z["ZoneName"])
            return {"id": ctx.region, "names": [z["ZoneName"] for z in zones],
                    "zoneIds": [z.get("ZoneId", "") for z in zones],
                    "groupNames": sorted({z.get("GroupName", ctx.region) for z in zones}),
                    **{k: v for k, v in args.items() if k in ("state", "allAvailabilityZones")}}
        if token == "aws:index/getRegion:getRegion":
            return {"id": ctx.region, "name": ctx.region, "region": ctx.region,
                    "endpoint": f"ec2.{ctx.region}.amazonaws.com", "description": ctx.region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            who = ctx.client("sts").get_caller_identity()
            return {"id": who["Account"], "accountId": who["Account"], "arn": who["Arn"], "userId": who["UserId"]}
        raise FakeCloudError(f"the fake cloud does not answer the call {token}: add it to "
                             "tests/fakecloud/engine_run.py")

    # ----- after the program
    def prune(self) -> None:
        """Delete what an earlier run made that this run's program no longer declares (as pulumi up would)."""
        from .resources import HANDLERS as handlers

        for rec in reversed(list(self.data["resources"])):
            if rec["urn"] in self.seen:
                continue
            if rec["type"] != PROVIDER_TYPE and not rec.get("retain") and rec.get("id"):
                handlers[rec["type"]][1](self._context_for_record(rec), rec)
                self.emit(f"- {rec['type']} {rec['name']} {rec['id']}")
            self.data["resources"].remove(rec)
            self.records.pop(rec["urn"], None)
            self.save()

    def _context_for_record(self, rec: dict[str, Any]) -> Context:
        urn = rec.get("provider") or ""
        if urn not in self.contexts:
            provider = self.records.get(urn)
            if provider is None:
                return self._context("")
            self.contexts[urn] = provider_context(provider.get("state") or {}, self.endpoint, self.region)
        return self.contexts[urn]


def _monitor_class() -> Any:
    from pulumi.runtime import mocks

    class Monitor(mocks.MockMonitor):
        """The SDK's mock monitor, passing on what MockResourceArgs leaves out (the URN, retainOnDelete)."""

        local = threading.local()

        def RegisterResource(self, request: Any) -> Any:
            Monitor.local.info = (self.make_urn(request.parent, request.type, request.name),
                                  bool(request.retainOnDelete))
            try:
                return super().RegisterResource(request)
            finally:
                Monitor.local.info = None

    return Monitor


def run_up(home: Path, stack: str, config: dict[str, str], emit: Callable[[str], None] = print,
           program_spec: str = PROGRAM) -> dict[str, Any]:
    """Run the program once under mocks backed by moto; returns (and records) its outputs."""
    from pulumi.runtime import mocks

    file = StackFile(home, stack)
    with file.lock():
        run = Run(home, stack, config, emit)
        monitor_class = _monitor_class()

        class Mocks(mocks.Mocks):
            def new_resource(self, args: mocks.MockResourceArgs) -> tuple[Optional[str], dict[str, Any]]:
                urn, retain = getattr(monitor_class.local, "info", None) or ("", False)
                return run.new_resource(args.typ, args.name, urn, args.inputs, args.provider or "",
                                        bool(args.custom), retain)

            def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
                return run.call(args.token, args.args, args.provider or ""), []

        the_mocks = Mocks()
        outputs = run_program(program_spec, config, [], the_mocks, monitor_class(the_mocks), PROJECT, stack,
                              lambda: run.first_error, FakeCloudError)
        run.prune()
        run.data.update(outputs=outputs, config=dict(config))
        run.save()
        emit(f"stack {stack}: {run.made} made, {run.reused} unchanged, {len(outputs)} outputs")
        return outputs


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fakecloud.engine_run")
    ap.add_argument("command", choices=["up"])
    ap.add_argument("--home", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--program", default=PROGRAM)
    args = ap.parse_args(argv)
    return child_main(lambda config, emit: run_up(Path(args.home), args.stack, config, emit, args.program),
                      FakeCloudError)


if __name__ == "__main__":
    sys.exit(main())
