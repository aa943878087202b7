"""LightningFlow: the orchestrator. Its run() is called again whenever something changed."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, Optional

from . import codec, context
from .compat import reject, warn_ignored
from .component import Component, announce
from .errors import LitError
from .schedule import Schedule, normalize
from .work import LightningWork


class LightningFlow(Component):
    """Override `run()`. Attach works and child flows as attributes; public attributes are state."""

    _lit_section = "flows"

    def __init__(self) -> None:
        object.__setattr__(self, "_lit_name", "root")
        object.__setattr__(self, "_lit_children", {})
        object.__setattr__(self, "_lit_schedules", {})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # configure_layout() is supported: `lit run`'s dashboard shows it as tabs (lit.runtime.ui.layout).
        for hook, instead in (
            ("configure_commands", "lit has no app commands; pass inputs with --env or files"),
            ("configure_api", "lit has no app API server; serve one from a work (work.url)"),
        ):
            if hook in cls.__dict__:
                raise reject(f"{cls.__name__}.{hook}()", instead)
        if "ready" in cls.__dict__:
            warn_ignored(f"{cls.__name__}.ready", "lit has no UI to gate on readiness")
        if "load_state_dict" in cls.__dict__:
            warn_ignored(f"{cls.__name__}.load_state_dict()", "lit does not restore apps from checkpoints")

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Orchestrate: call works, read their state, decide what runs next."""

    # -- the component tree -----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name in ("name", "flows", "state", "state_vars", "ready"):
            raise AttributeError(f"{name!r} is reserved by LightningFlow; pick another attribute name")
        if name == "lightningignore":
            warn_ignored("lightningignore", "lit ships the app folder minus .gitignore and .litignore matches")
            return
        children = self.__dict__.get("_lit_children")
        if children is None:
            raise LitError(f"{type(self).__name__}.__init__ must call super().__init__() before setting "
                           f"attributes (it set {name!r} first)")
        if isinstance(value, Component):
            value._lit_attach(f"{self._lit_name}.{name}")
            children[name] = value
            object.__setattr__(self, name, value)
            announce(value)
            return
        if name in children:
            del children[name]
        codec.encode(value, f"{type(self).__name__}.{name}")
        object.__setattr__(self, name, value)

    def _lit_named(self) -> list[tuple[str, Component]]:
        return list(self._lit_children.items())

    def _lit_child(self, key: str) -> Optional[Component]:
        return self._lit_children.get(key)

    @property
    def state_vars(self) -> dict[str, Any]:
        """Lightning's shape: this flow's vars, and those of its child flows, works and structures."""
        out: dict[str, Any] = {"vars": codec.encode(self._lit_vars(), self.name), "flows": {}, "works": {},
                               "structures": {}}
        for attr, child in self._lit_children.items():
            out[child._lit_section][attr] = child._lit_state()
        return out

    def _lit_state(self) -> dict[str, Any]:
        return self.state_vars

    @property
    def state(self) -> dict[str, Any]:
        return self.state_vars

    @property
    def ready(self) -> bool:
        return True

    @property
    def lightningignore(self) -> tuple[str, ...]:
        return ()

    def stop_works(self, works: list[LightningWork]) -> None:
        for work in works:
            work.stop()

    def set_state(self, state: Any, recurse: bool = True) -> None:
        raise reject("LightningFlow.set_state()", "assign attributes instead")

    def experimental_iterate(self, iterable: Any, run_once: bool = True, user_key: str = "") -> Any:
        raise reject("LightningFlow.experimental_iterate()", "iterate directly, keeping progress in state")

    @property
    def flows(self) -> dict[str, LightningFlow]:
        """Every flow below this one, by name."""
        out: dict[str, LightningFlow] = {}
        for child in self._lit_components():
            if isinstance(child, LightningFlow):
                out[child.name] = child
                out.update(child.flows)
        return out

    def works(self, recurse: bool = True) -> list[LightningWork]:
        return [work for _, work in self.named_works(recurse)]

    def named_works(self, recurse: bool = True) -> list[tuple[str, LightningWork]]:
        out: list[tuple[str, LightningWork]] = []
        for child in self._lit_components():
            if isinstance(child, LightningWork):
                out.append((child.name, child))
            elif recurse and isinstance(child, LightningFlow):
                out.extend(child.named_works(recurse))
        return out

    def get_all_children(self) -> list[Component]:
        out: list[Component] = []
        for child in self._lit_components():
            out.append(child)
            if isinstance(child, LightningFlow):
                out.extend(child.get_all_children())
        return out

    # -- control ----------------------------------------------------------------------------------
    def stop(self, end_msg: str = "") -> None:
        """End the app successfully (exit code 0) with `end_msg`."""
        raise context.AppStop(end_msg, failed=False)

    def fail(self, end_msg: str = "") -> None:
        """End the app as failed (exit code 1) with `end_msg`."""
        raise context.AppStop(end_msg, failed=True)

    def schedule(self, cron_pattern: str, start_time: Optional[datetime] = None,
                 user_key: Optional[str] = None) -> bool:
        """True on the first call, then True for one flow tick at each time `cron_pattern` names.

        `cron_pattern` is a croniter expression (5 fields, or 6 with seconds last) or one of hourly, daily,
        weekly, monthly, yearly, annually, midnight. Times are this machine's local time. Each call site
        (or `user_key`) is its own schedule.
        """
        expression = normalize(cron_pattern)  # raises ValueError naming a bad pattern, at the call
        if user_key is None:
            caller = inspect.currentframe().f_back  # type: ignore[union-attr]
            key = f"{cron_pattern}@{caller.f_code.co_filename}:{caller.f_lineno}"  # type: ignore[union-attr]
        else:
            key = str(user_key)
        schedules: dict[str, Schedule] = self._lit_schedules
        existing = schedules.get(key)
        if existing is None:
            schedules[key] = Schedule(expression, start_time)
            runtime = context.current_runtime()
            if runtime is not None:
                runtime.schedule_added(schedules[key])
            return True
        return existing.consume()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


Flow = LightningFlow
