"""List and Dict of components, as in Lightning's `L.structures`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .component import Component, announce, is_node
from .work import LightningWork


def _check(item: Any) -> None:
    if not is_node(item):
        raise TypeError(f"structures hold LightningWork and LightningFlow items, got {item!r}")


def _attach(item: Component, name: str) -> None:
    """An item's place in an attached structure; in a running app, the item (made in run()) joins it."""
    item._lit_attach(name)
    announce(item)


class _Structure(Component):
    """What List and Dict share: they hold flows and works (by key) and have no state of their own."""

    _lit_section = "structures"

    def __init__(self) -> None:
        self._lit_name = ""

    def _lit_attach(self, name: str) -> None:
        self._lit_name = name
        for key, item in self._lit_named():
            _attach(item, f"{name}.{key}")

    def _lit_state(self) -> dict[str, Any]:
        return {key: item._lit_state() for key, item in self._lit_named()}


class List(_Structure):
    """A list of works or flows; items are named `<parent>.<attr>.<index>`."""

    def __init__(self, *items: Any) -> None:
        super().__init__()
        self._items: list[Any] = []
        for item in items:
            self.append(item)

    def append(self, item: Any) -> None:
        _check(item)
        self._items.append(item)
        if self._lit_name:
            _attach(item, f"{self._lit_name}.{len(self._items) - 1}")

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def __getitem__(self, index: int) -> Any:
        return self._items[index]

    def __setitem__(self, index: int, item: Any) -> None:
        _check(item)
        self._items[index] = item
        if self._lit_name:
            _attach(item, f"{self._lit_name}.{index % len(self._items)}")

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items))

    def _lit_child(self, key: str) -> Any:
        return self._items[int(key)]

    def _lit_named(self) -> list[tuple[str, Any]]:
        return [(str(i), item) for i, item in enumerate(self._items)]

    @property
    def works(self) -> list[Any]:
        return [item for item in self._items if isinstance(item, LightningWork)]

    @property
    def flows(self) -> dict[str, Any]:
        return {item.name: item for item in self._items if not isinstance(item, LightningWork)}

    def __repr__(self) -> str:
        return f"List({self._items!r})"


class Dict(_Structure):
    """A dict of works or flows with string keys; items are named `<parent>.<attr>.<key>`."""

    def __init__(self, **items: Any) -> None:
        super().__init__()
        self._items: dict[str, Any] = {}
        for key, item in items.items():
            self[key] = item

    def __setitem__(self, key: str, item: Any) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"structures.Dict keys must be non-empty strings without '.', got {key!r}")
        _check(item)
        self._items[key] = item
        if self._lit_name:
            _attach(item, f"{self._lit_name}.{key}")

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def keys(self) -> list[str]:
        return list(self._items)

    def values(self) -> list[Any]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._items.items())

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def _lit_child(self, key: str) -> Any:
        return self._items[key]

    def _lit_named(self) -> list[tuple[str, Any]]:
        return list(self._items.items())

    @property
    def works(self) -> list[Any]:
        return [item for item in self._items.values() if isinstance(item, LightningWork)]

    @property
    def flows(self) -> dict[str, Any]:
        return {item.name: item for item in self._items.values() if not isinstance(item, LightningWork)}

    def __repr__(self) -> str:
        return f"Dict({self._items!r})"
