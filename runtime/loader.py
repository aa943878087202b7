"""Load an app file: find exactly one LightningApp in it, with clear errors for bad input."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from . import app as app_module
from .errors import BadInput, LitError

APP_MODULE = "__lit_app__"


class UserCodeError(LitError):
    """The user's app file raised while loading; carries the traceback trimmed to the user's frames."""

    exit_code = 2

    def __init__(self, message: str, formatted: str) -> None:
        super().__init__(message)
        self.formatted = formatted


def load_app(path: str | Path) -> app_module.LightningApp:
    file = Path(path)
    if not file.exists():
        raise BadInput(f"{path}: no such file; pass the path of your app file, e.g. `lit run app.py`")
    if not file.is_file() or file.suffix != ".py":
        raise BadInput(f"{path}: not a Python file; pass the path of your app's .py file")
    file = file.resolve()
    source = file.read_text(encoding="utf-8", errors="replace")
    try:
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise BadInput(f"{file.name}:{exc.lineno}: syntax error: {exc.msg}") from None
    module = _fresh_module(file)
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    app_module.created.clear()
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        raise UserCodeError(f"{file.name}: {type(exc).__name__}: {exc}", _user_traceback(exc, file)) from exc
    found = [(name, value) for name, value in vars(module).items()
             if isinstance(value, app_module.LightningApp)]
    if not found:
        raise BadInput(f"{file.name}: no LightningApp found; end the file with `app = L.LightningApp(YourFlow())`")
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise BadInput(f"{file.name}: more than one LightningApp ({names}); keep exactly one")
    return found[0][1]


def _fresh_module(file: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(APP_MODULE, file)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE] = module
    return module


def _user_traceback(exc: BaseException, file: Path) -> str:
    """The traceback from the first frame in the user's file on (lit's own loader frames dropped)."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = next((i for i, f in enumerate(frames) if f.filename == str(file)), 0)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames[start:])]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)
