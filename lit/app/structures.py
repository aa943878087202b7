"""`lit.app.structures` (as `lightning.app.structures`)."""

from lit.runtime.structures import Dict, List

__all__ = ["Dict", "List"]
