"""LightningWork: a piece of the app that runs in its own process, on its own machine when asked."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

from . import codec, context
from .compat import reject, warn_ignored
from .component import Component, is_node
from .compute import CloudCompute
from .errors import BadInput, LitError, StateError
from .status import FINAL_STAGES, WorkStageStatus, WorkStatus

codec.register_type("compute", CloudCompute, CloudCompute.to_dict, CloudCompute.from_dict)

# The attribute names a work keeps for itself; users may not assign them as state.
_RESERVED = frozenset({"name", "status", "statuses", "run", "stop", "host", "port", "internal_ip", "public_ip",
                       "url", "parallel", "cache_calls", "raise_exception", "cloud_compute", "start_with_flow",
                       "display_name", "lightningignore"})


class LightningWork(Component):
    """Override `run()`. Public attributes are state, shared with the flow both ways.

    Arguments are Lightning's: `parallel` (the flow does not wait for `run()` to finish),
    `cache_calls` (a call with arguments that already succeeded does not run again), `raise_exception`
    (a failure ends the app), `cloud_compute` (the machine), `start_with_flow` (start the process, or
    provision the machine, when the app starts rather than at the first call).
    """

    _lit_section = "works"

    def __new__(cls, *args: Any, **kwargs: Any) -> LightningWork:
        self = super().__new__(cls)
        # Kept so that a work created inside a flow's run() can be re-created in its own process.
        object.__setattr__(self, "_lit_init_args", (args, kwargs))
        return self

    def __init__(
        self,
        parallel: bool = False,
        cache_calls: bool = True,
        raise_exception: bool = True,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        local_build_config: Any = None,
        cloud_build_config: Any = None,
        cloud_compute: Optional[CloudCompute] = None,
        run_once: Optional[bool] = None,
        start_with_flow: bool = True,
    ) -> None:
        if run_once is not None:
            warn_ignored("LightningWork(run_once=...)", "it is the deprecated alias of cache_calls; use that")
            cache_calls = bool(run_once)
        if local_build_config is not None:
            warn_ignored("LightningWork(local_build_config=...)", "works run in the environment lit runs in")
        if cloud_build_config is not None:
            warn_ignored("LightningWork(cloud_build_config=...)",
                         "lit installs the app's requirements.txt on remote machines")
        if cloud_compute is None:
            cloud_compute = CloudCompute()
        if not isinstance(cloud_compute, CloudCompute):
            raise TypeError(f"cloud_compute must be a CloudCompute, got {cloud_compute!r}")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise ValueError(f"port must be an int in 1..65535, got {port!r}")
        config = {
            "_lit_parallel": bool(parallel),
            "_lit_cache_calls": bool(cache_calls),
            "_lit_raise_exception": bool(raise_exception),
            "_lit_host": host,
            "_lit_port": port,
            "_lit_compute": cloud_compute,
            "_lit_start_with_flow": bool(start_with_flow),
            "_lit_name": "",
            "_lit_status": WorkStatus(),
            "_lit_internal_ip": "",
            "_lit_executing": False,
            "_lit_sink": None,
            "_lit_handle": None,
            "_lit_display_name": "",
            "_lit_public_ip": "",
            "_lit_successes": 0,
        }
        for key, value in config.items():
            object.__setattr__(self, key, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "_lit_wrapped", False):
            cls.run = _wrap_run(run)  # type: ignore[method-assign]
        # configure_layout() is supported: `lit run`'s dashboard shows it as tabs (lit.runtime.ui.layout).
        for hook, instead in (
            ("on_exception", "a work's exception fails it; use raise_exception=False and read work.status "
                             "in the flow, or catch inside run()"),
        ):
            if hook in cls.__dict__:
                raise reject(f"{cls.__name__}.{hook}()", instead)

    def run(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must override run()")

    def on_start(self) -> None:
        """Called in the work's process once it is up, before its first call. Override to set up."""

    def on_exit(self) -> None:
        """Called in the work's process when the work is stopped. Override to clean up."""

    def start(self) -> None:
        raise reject("LightningWork.start()", "use start_with_flow=True, or the work starts at its first run() call")

    def delete(self) -> None:
        """Stop the work and free its machine (lit keeps no per-work storage to delete)."""
        self.stop()

    # -- state ------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name in _RESERVED:
            attr = getattr(type(self), name, None)
            if not isinstance(attr, property) or attr.fset is None:
                raise AttributeError(f"{name!r} is reserved by LightningWork; pick another attribute name")
            object.__setattr__(self, name, value)  # a property with a setter
            return
        if is_node(value):
            raise StateError(f"{type(self).__name__}.{name}: a work cannot hold other components; "
                             "attach works to a LightningFlow")
        encoded = codec.encode(value, f"{type(self).__name__}.{name}")
        object.__setattr__(self, name, value)
        sink = self.__dict__.get("_lit_sink")
        if sink is not None:
            sink(name, encoded)

    @property
    def state_vars(self) -> dict[str, Any]:
        """Lightning's shape: {"vars": {...}} (JSON-ready)."""
        return {"vars": codec.encode(self._lit_vars(), self.name or type(self).__name__)}

    def _lit_state(self) -> dict[str, Any]:
        return self.state_vars

    @property
    def state(self) -> dict[str, Any]:
        return {**self.state_vars, "status": dict(self.status.__dict__)}

    @property
    def display_name(self) -> str:
        return self._lit_display_name or self.name

    @display_name.setter
    def display_name(self, value: str) -> None:
        object.__setattr__(self, "_lit_display_name", str(value))

    @property
    def lightningignore(self) -> tuple[str, ...]:
        return ()

    @lightningignore.setter
    def lightningignore(self, value: Any) -> None:
        warn_ignored("lightningignore", "lit ships the app folder minus .gitignore and .litignore matches")

    # -- identity and configuration ---------------------------------------------------------------
    def _lit_attach(self, name: str) -> None:
        if self._lit_name and self._lit_name != name and self.has_started:
            raise LitError(f"work {self._lit_name} is already attached; a work has one place in the tree")
        super()._lit_attach(name)

    @property
    def cloud_compute(self) -> CloudCompute:
        return self._lit_compute

    @cloud_compute.setter
    def cloud_compute(self, value: CloudCompute) -> None:
        if not isinstance(value, CloudCompute):
            raise TypeError(f"cloud_compute must be a CloudCompute, got {value!r}")
        if self.has_started:
            raise LitError(f"{self.name}: cloud_compute cannot change once the work has started")
        object.__setattr__(self, "_lit_compute", value)

    @property
    def parallel(self) -> bool:
        return self._lit_parallel

    @property
    def cache_calls(self) -> bool:
        return self._lit_cache_calls

    @property
    def raise_exception(self) -> bool:
        return self._lit_raise_exception

    @property
    def start_with_flow(self) -> bool:
        return self._lit_start_with_flow

    @property
    def host(self) -> str:
        """The address the work's server should bind (Lightning's meaning)."""
        return self._lit_host

    @property
    def port(self) -> Optional[int]:
        """The port the work's server should bind; lit picks a free one when the work starts."""
        return self._lit_port

    @property
    def internal_ip(self) -> str:
        """The address other works reach this work's machine at ("" until it started)."""
        if not self._lit_internal_ip:
            runtime = context.current_runtime()
            if runtime is not None:
                runtime.address_awaited(self)
        return self._lit_internal_ip

    @property
    def public_ip(self) -> str:
        """The machine's public address where it has one lit may use ("" locally and on private clusters)."""
        return self._lit_public_ip

    @property
    def url(self) -> str:
        if not self._lit_internal_ip or self._lit_port is None:
            return ""
        return f"http://{self._lit_internal_ip}:{self._lit_port}"

    # -- status -----------------------------------------------------------------------------------
    @property
    def status(self) -> WorkStatus:
        return self._lit_status

    @property
    def statuses(self) -> list[WorkStatus]:
        return [self.status] if self.has_started else []

    @property
    def has_timeout(self) -> bool:
        return self.has_failed and self.status.reason == "timeout"

    @property
    def num_timeouts(self) -> int:
        return 0

    @property
    def num_successes(self) -> int:
        return self._lit_successes

    @property
    def has_started(self) -> bool:
        return self.status.stage != WorkStageStatus.NOT_STARTED

    @property
    def is_pending(self) -> bool:
        return self.status.stage == WorkStageStatus.PENDING

    @property
    def is_running(self) -> bool:
        return self.status.stage == WorkStageStatus.RUNNING

    @property
    def has_succeeded(self) -> bool:
        return self.status.stage == WorkStageStatus.SUCCEEDED

    @property
    def has_failed(self) -> bool:
        return self.status.stage == WorkStageStatus.FAILED

    @property
    def has_stopped(self) -> bool:
        return self.status.stage == WorkStageStatus.STOPPED

    @property
    def has_finished(self) -> bool:
        return self.status.stage in FINAL_STAGES

    def stop(self) -> None:
        """Stop the work's process (and, on a cloud, its machine). Only the flow may call this."""
        if self._lit_executing or context.agent_work is self:
            raise LitError(f"{type(self).__name__}.stop() can only be called from the flow")
        runtime = context.current_runtime()
        if runtime is None:
            raise LitError(f"{type(self).__name__}.stop() was called outside a running app")
        runtime.stop_work(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '(unattached)'} {self.status.stage}>"


def _wrap_run(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def wrapper(self: LightningWork, *args: Any, **kwargs: Any) -> Any:
        if self._lit_executing:
            return run(self, *args, **kwargs)
        runtime = context.current_runtime()
        if runtime is None:
            if context.agent_work is not None:
                raise LitError(f"{type(self).__name__}.run() was called from inside another work; "
                               "only the flow calls works")
            raise BadInput(f"{type(self).__name__}.run() was called outside a running app: call it from a "
                           "LightningFlow's run() and start the app with `lit run app.py`")
        return runtime.call(self, args, kwargs)

    wrapper._lit_wrapped = True  # type: ignore[attr-defined]
    return wrapper


Work = LightningWork
