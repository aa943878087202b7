"""What flows, works and the structures (List, Dict) share: a place in the app's tree.

Every component has a name, its path from the root ("root.trials.3"); a parent gives it that name when it
attaches it, and tells the running app (if any) that it joined. Flows and works hold state; structures only hold
flows and works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Optional

from . import context


class Component:
    """Base of LightningFlow, LightningWork, List and Dict."""

    # The section of a parent flow's `state_vars` this component appears in (Lightning's layout).
    _lit_section: ClassVar[str] = ""
    _lit_name: str

    @property
    def name(self) -> str:
        """The path from the root, "" (a work, a structure) or "root" (a flow) until it is attached."""
        return self._lit_name

    @property
    def _lit_is_structure(self) -> bool:
        return self._lit_section == "structures"

    # -- the tree ---------------------------------------------------------------------------------
    def _lit_named(self) -> list[tuple[str, Component]]:
        """The components directly below this one, by the key that extends their name."""
        return []

    def _lit_child(self, key: str) -> Optional[Component]:
        """The component directly below this one at `key` (one part of a path), or None.
        Structures may raise KeyError, IndexError or ValueError for a key they cannot hold."""
        return None

    def _lit_components(self) -> Iterator[Component]:
        """The flows and works directly below this one (a structure's items count as directly below its flow)."""
        for _, child in self._lit_named():
            if child._lit_is_structure:
                yield from child._lit_components()
            else:
                yield child

    def _lit_attach(self, name: str) -> None:
        """Take the name `name` in the tree, and rename everything below to match."""
        object.__setattr__(self, "_lit_name", name)
        for key, child in self._lit_named():
            child._lit_attach(f"{name}.{key}")

    # -- state ------------------------------------------------------------------------------------
    def _lit_vars(self) -> dict[str, Any]:
        """The public attributes that are state (not child components), as Python values."""
        children = {key for key, _ in self._lit_named()}
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k not in children}

    def _lit_state(self) -> dict[str, Any]:
        """What a parent flow's `state_vars` holds for this component (JSON-ready)."""
        raise NotImplementedError


def announce(component: Component) -> None:
    """Tell the running app, if there is one, that `component` joined the tree (it was just attached)."""
    runtime = context.current_runtime()
    if runtime is not None:
        runtime.adopt(component)


def is_node(value: Any) -> bool:
    """A flow or a work: what structures hold, and what a work's state may not."""
    return isinstance(value, Component) and value._lit_section in ("flows", "works")
