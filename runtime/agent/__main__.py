"""`python -m lit.runtime.agent [stdio | detached --socket PATH | forkserver --control-fd N]`."""

from __future__ import annotations

import sys

from .modes import main

if __name__ == "__main__":
    sys.exit(main())
