"""`L.structures.List` and `L.structures.Dict` of components."""

from lit.runtime.structures import Dict, List

__all__ = ["Dict", "List"]
