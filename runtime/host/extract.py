"""Unpack a code bundle read from stdin into a folder, atomically: `python -c SOURCE TARGET`.

This runs before lit's code is on the host (the launcher sends this file's source), so it is standard library
only. The bundle is unpacked next to TARGET, marked complete, then renamed into place: a reader never sees half a
bundle, and two uploads of the same bundle racing each other both succeed (the bundle is content-addressed, so
the loser's copy is the same and is dropped)."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from typing import BinaryIO, Optional

COMPLETE = ".complete"  # the marker the launcher tests for: this bundle is unpacked in full


def extract(stream: BinaryIO, target: str) -> None:
    tmp = target + ".tmp-" + str(os.getpid())
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.12+ (and security releases of 3.9-3.11)
            tar.extractall(tmp, filter="data")
        else:
            tar.extractall(tmp)
    open(os.path.join(tmp, COMPLETE), "w").close()
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another upload of the same bundle won the race: same content


def main(argv: Optional[list[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    extract(sys.stdin.buffer, args[0])


if __name__ == "__main__":
    main()
