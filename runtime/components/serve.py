"""`PythonServer`: a work that serves a model behind `POST /predict`, as Lightning's
`lightning.app.components.PythonServer` does, with the standard library's HTTP server (no FastAPI, no uvicorn).

What the server answers, on `work.host:work.port` (reach it at `work.url`):

* `POST /predict` with a JSON object: validated against `input_type`, passed to `predict()` as an instance of it;
  what `predict()` returns (a dict or an `output_type` instance) is validated against `output_type` and sent back
  as JSON (200). A body that is not a JSON object, or does not fit `input_type`: 422. `predict()` raising, or
  returning something that does not fit `output_type`: 500, and the server goes on serving. Every error body is
  one JSON line, `{"detail": "what was wrong"}` (FastAPI's key, so Lightning clients read it where they did).
* `GET /healthz`: `{"ready": true}` once `setup()` has returned and the port listens (Lightning has no such route;
  `work.ready` is its equivalent and is set at the same moment).
* `GET /`: what is served: the routes and the JSON schemas of the input and output types.

Types: lit's own `Text`, `Number`, `Image`, `Category` (and the defaults, `{"payload": str}` in and
`{"prediction": str}` out) need nothing installed. A pydantic model class (v2: `model_validate`/`model_dump`,
v1: `parse_obj`/`dict`) works too; pydantic is then the app's dependency (`pip install lit[serve]`).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import functools
import inspect
import json
import logging
import struct
import threading
import traceback
import zlib
from collections.abc import Coroutine
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar, Optional

from ..work import LightningWork

__all__ = ["Category", "Image", "Number", "PythonServer", "Text", "ValidationError"]

_log = logging.getLogger("lit.components.serve")

MAX_BODY_BYTES = 64 * 1024 * 1024  # a base64 image of a few tens of MB still fits; beyond that, 413
ROUTES = ("GET /", "GET /healthz", "POST /predict")


# -- lit's own request and response types ------------------------------------------------------------
class ValidationError(ValueError):
    """A value that does not fit a type. `errors()` has pydantic's shape, so both kinds are reported alike."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" if field else message for field, message in problems))

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": (field,) if field else (), "msg": message} for field, message in self.problems]


# What each field kind accepts, and the JSON schema type it is.
_KINDS: dict[str, str] = {"str": "string", "int": "integer", "number": "number"}


def _check_value(kind: str, value: Any) -> Any:
    """`value` as the field kind holds it; raises ValueError with what was expected."""
    if kind == "str":
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {_describe(value)}")
    if isinstance(value, bool):  # bool is an int subclass in Python, never a number in a model API
        raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, got {_describe(value)}")
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # 3.0 is 3, as pydantic's lax mode has it
            return int(value)
        raise ValueError(f"expected an integer, got {_describe(value)}")
    if isinstance(value, (int, float)):
        return value
    raise ValueError(f"expected a number, got {_describe(value)}")


def _describe(value: Any) -> str:
    """A value as JSON names it, with the value itself when it is short and simple: `integer 4`, `array`."""
    names = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null", list: "array",
             dict: "object"}
    name = names.get(type(value), type(value).__name__)
    if value is None or not isinstance(value, (str, int, float)):
        return name
    text = json.dumps(value)
    return f"{name} {text if len(text) <= 40 else text[:37] + '...'}"


class _Model:
    """A small stand-in for a pydantic model: declared fields, each required or optional (default None).

    It answers pydantic v2's `model_validate`, `model_dump` and `model_json_schema`, so the server treats it and a
    user's pydantic model alike. Unknown keys are ignored, as pydantic does by default."""

    # field -> (kind, required); kinds: "str", "int", "number"
    _fields: ClassVar[dict[str, tuple[str, bool]]] = {}

    def __init__(self, **values: Any) -> None:
        problems: list[tuple[str, str]] = []
        checked: dict[str, Any] = {}
        for field, (kind, required) in self._fields.items():
            value = values.get(field)
            if value is None:
                if required:
                    problems.append((field, "field required" if field not in values else "may not be null"))
                checked[field] = None
                continue
            try:
                checked[field] = _check_value(kind, value)
            except ValueError as exc:
                problems.append((field, str(exc)))
        if problems:
            raise ValidationError(problems)
        self.__dict__.update(checked)

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ValidationError([("", f"expected a JSON object, got {_describe(data)}")])
        return cls(**{str(k): v for k, v in data.items()})

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return {field: self.__dict__.get(field) for field in self._fields}

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        properties = {}
        for field, (kind, required) in cls._fields.items():
            properties[field] = {"type": _KINDS[kind]} if required else {"anyOf": [{"type": _KINDS[kind]},
                                                                                   {"type": "null"}]}
        return {"title": cls.__name__, "type": "object", "properties": properties,
                "required": [f for f, (_, required) in cls._fields.items() if required]}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.model_dump() == other.model_dump()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.model_dump().items())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"{type(self).__name__}({fields})"


class _DefaultInputData(_Model):
    """Lightning's default input: `{"payload": "..."}`, read as `request.payload`."""

    _fields = {"payload": ("str", True)}
    payload: str


class _DefaultOutputData(_Model):
    """Lightning's default output: `predict()` returns `{"prediction": "..."}`."""

    _fields = {"prediction": ("str", True)}
    prediction: str


def _sample_png() -> bytes:
    """A 16x16 grey gradient PNG, made here: Lightning's sample downloads a cat picture, lit downloads nothing."""
    size = 16
    rows = b"".join(b"\x00" + bytes((x + y) * 8 for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Image(_Model):
    """`{"image": "<base64 string>"}` (optional)."""

    _fields = {"image": ("str", False)}
    image: Optional[str]

    @staticmethod
    def get_sample_data() -> dict[str, Any]:
        return {"image": base64.b64encode(_sample_png()).decode("utf-8")}

    @staticmethod
    def request_code_sample(url: str) -> str:
        return f"""import base64
import json
import urllib.request
from pathlib import Path

img = base64.b64encode(Path("image.png").read_bytes()).decode("utf-8")
request = urllib.request.Request({url!r}, data=json.dumps({{"image": img}}).encode(),
                                 headers={{"Content-Type": "application/json"}})
response = urllib.request.urlopen(request)
"""

    @staticmethod
    def response_code_sample() -> str:
        return """img = json.load(response)["image"]
Path("response.png").write_bytes(base64.b64decode(img.encode("utf-8")))
"""


class Category(_Model):
    """`{"category": <integer>}` (optional)."""

    _fields = {"category": ("int", False)}
    category: Optional[int]

    @staticmethod
    def get_sample_data() -> dict[str, Any]:
        return {"category": 463}

    @staticmethod
    def response_code_sample() -> str:
        return """print("Predicted category is: ", json.load(response)["category"])
"""


class Text(_Model):
    """`{"text": "..."}` (optional)."""

    _fields = {"text": ("str", False)}
    text: Optional[str]

    @staticmethod
    def get_sample_data() -> dict[str, Any]:
        return {"text": "A portrait of a person looking away from the camera"}

    @staticmethod
    def request_code_sample(url: str) -> str:
        return f"""import json
import urllib.request

body = {{"text": "A portrait of a person looking away from the camera"}}
request = urllib.request.Request({url!r}, data=json.dumps(body).encode(),
                                 headers={{"Content-Type": "application/json"}})
response = urllib.request.urlopen(request)
"""


class Number(_Model):
    """`{"prediction": <number>}` (optional). Lightning declares an integer (and calls the type deprecated in favour
    of Category); lit takes any JSON number, as given, so every answer Lightning accepts is accepted here."""

    _fields = {"prediction": ("number", False)}
    prediction: Optional[float]

    @staticmethod
    def get_sample_data() -> dict[str, Any]:
        return {"prediction": 463}


# -- adapting lit's types and pydantic models alike ---------------------------------------------------
def _model_api(kind: Any, role: str) -> type:
    """`kind` if it can validate and dump (lit's types, pydantic v2 or v1), else TypeError naming `role`."""
    if isinstance(kind, type):
        if callable(getattr(kind, "model_validate", None)) and callable(getattr(kind, "model_dump", None)):
            return kind
        if callable(getattr(kind, "parse_obj", None)) and callable(getattr(kind, "dict", None)):
            return kind
    raise TypeError(f"{role} must be a pydantic BaseModel class or one of lit.components Text, Number, Image, "
                    f"Category; got {kind!r}")


def _validate(kind: Any, data: Any) -> Any:
    if hasattr(kind, "model_validate"):
        return kind.model_validate(data)
    return kind.parse_obj(data)  # pydantic v1


def _dump(instance: Any) -> Any:
    """An instance as JSON-ready values (pydantic's JSON mode turns dates, enums and the like into JSON)."""
    if hasattr(instance, "model_dump"):
        return instance.model_dump(mode="json")
    return json.loads(instance.json())  # pydantic v1


def _schema(kind: Any) -> Any:
    try:
        return kind.model_json_schema() if hasattr(kind, "model_json_schema") else kind.schema()
    except Exception as exc:  # a schema is a courtesy on GET /; a type without one still serves
        return {"title": getattr(kind, "__name__", str(kind)), "error": _one_line(exc)}


def _one_line(exc: BaseException) -> str:
    """What was wrong, on one line: `field: message; ...` for validation errors, `Type: message` otherwise."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
        except Exception:
            items = None
        if isinstance(items, list) and items:
            parts = []
            for item in items:
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            return _flatten("; ".join(parts))
    text = str(exc)
    return _flatten(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _user_traceback(exc: BaseException) -> str:
    """The traceback of an exception from predict(), without this module's frames (the user's code is the story)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(exc), exc)]
    return "".join(lines).rstrip("\n")


def _flatten(text: str) -> str:
    return " ".join(text.split())


class _Endpoint:
    """The request handling, apart from HTTP: a body in, a status and a JSON-ready answer out."""

    def __init__(self, name: str, predict: Callable[[Any], Any], input_type: type, output_type: type) -> None:
        self.name = name
        self.predict = predict
        self.input_type = input_type
        self.output_type = output_type
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[threading.Thread] = None
        if inspect.iscoroutinefunction(predict):
            # An async predict() runs on one event loop of its own, in a thread: each request thread hands its
            # coroutine over and waits for the result, as FastAPI awaits an async route.
            self.loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self.loop.run_forever, name="lit-serve-loop", daemon=True)
            self._loop_thread.start()

    def close(self) -> None:
        if self.loop is not None and self._loop_thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(5)
            if not self.loop.is_running():
                self.loop.close()  # its self-pipe too: nothing is left to the garbage collector

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "routes": list(ROUTES), "input": _schema(self.input_type),
                "output": _schema(self.output_type)}

    def handle(self, body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": f"the body is not JSON: {_flatten(str(exc))}"}
        if not isinstance(data, dict):
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": f"the body must be a JSON object, got {_describe(data)}"}
        try:
            request = _validate(self.input_type, data)
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError, in v1 and v2
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": _one_line(exc)}
        try:
            result = self.predict(request)
            if self.loop is not None and inspect.iscoroutine(result):
                result = asyncio.run_coroutine_threadsafe(_awaited(result), self.loop).result()
        except Exception as exc:
            # The caller gets one line; the work's log gets the traceback, as uvicorn logs a failed request.
            _log.error("%s.predict() raised (HTTP 500):\n%s", self.name, _user_traceback(exc))
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": _one_line(exc)}
        try:
            return HTTPStatus.OK, self.answer(result)
        except (ValueError, TypeError) as exc:
            detail = f"{self.name}.predict() returned an answer that does not fit {self.output_type.__name__}: " \
                     f"{_one_line(exc)}"
            _log.error("%s", detail)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": detail}

    def answer(self, result: Any) -> Any:
        """`result` checked against the output type, JSON-ready. A model instance is dumped and validated again:
        its attributes may have changed since it was made, and another model class may hold the same fields."""
        data = result
        if not isinstance(data, dict):
            if hasattr(data, "model_dump"):
                data = data.model_dump()
            elif hasattr(data, "dict") and hasattr(data, "json"):
                data = data.dict()  # pydantic v1
            else:
                raise ValidationError([("", f"expected a dict or {self.output_type.__name__}, "
                                            f"got {_describe(result)}")])
        return _dump(_validate(self.output_type, data))


async def _awaited(coro: Coroutine[Any, Any, Any]) -> Any:
    return await coro


class _Handler(BaseHTTPRequestHandler):
    """One connection. HTTP/1.1 keeps it open between requests, so a caller's session pays one connect."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without this, a delayed ACK adds ~40 ms
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(HTTPStatus.OK, self.server.endpoint.describe())
        elif path == "/healthz":
            self._reply(HTTPStatus.OK, {"ready": True})
        elif path == "/predict":
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"detail": "Method Not Allowed: use POST /predict"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"detail": f"Not Found: {path}; served: {', '.join(ROUTES)}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/predict":
            self.close_connection = True  # the body was not read: the connection cannot carry another request
            self._reply(HTTPStatus.NOT_FOUND, {"detail": f"Not Found: {path}; served: {', '.join(ROUTES)}"})
            return
        body = self._body()
        if body is not None:
            self._reply(*self.server.endpoint.handle(body))

    def _body(self) -> Optional[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._reply(HTTPStatus.LENGTH_REQUIRED, {"detail": "send the body with a Content-Length, not chunked"})
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.BAD_REQUEST
            self._reply(status, {"detail": f"the body must be at most {MAX_BODY_BYTES} bytes with a valid "
                                           f"Content-Length, got {self.headers.get('Content-Length')!r}"})
            return None
        return self.rfile.read(length)

    def _reply(self, status: int, answer: Any) -> None:
        body = json.dumps(answer).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log in the work's output (uvicorn runs at log_level="error" in Lightning too)."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many callers may connect at once; the default backlog is 5
    daemon_threads = True  # a connection a client leaves open never keeps the process alive

    def __init__(self, address: tuple[str, int], endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        super().__init__(address, _Handler)


# -- the work -----------------------------------------------------------------------------------------
def _closing_first(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """A subclass's on_exit(), with the server closed first (whether or not it calls super().on_exit())."""

    @functools.wraps(hook)
    def on_exit(self: PythonServer) -> None:
        self._lit_close()
        hook(self)

    on_exit._lit_closes_server = True  # type: ignore[attr-defined]
    return on_exit


class PythonServer(LightningWork, abc.ABC):
    """A model API in a work: override `setup()` (load the model, once) and `predict(request)`.

    `input_type` and `output_type` are lit's `Text`, `Number`, `Image`, `Category`, or pydantic model classes;
    the defaults take `{"payload": str}` and return `{"prediction": str}`. Other keyword arguments go to
    LightningWork (`cloud_compute=...`, `port=...`); the work always runs in parallel, so the flow goes on while
    it serves. `run()` serves until the app ends (lit ends the work's process) or the flow calls `stop()` (the port
    is closed before the flow sees `has_stopped`, then the process ends)."""

    def __init__(self, input_type: type = _DefaultInputData, output_type: type = _DefaultOutputData,
                 **work_kwargs: Any) -> None:
        if "parallel" in work_kwargs:
            raise TypeError("PythonServer always runs in parallel (its run() serves until the app ends); "
                            "do not pass parallel=")
        super().__init__(parallel=True, **work_kwargs)
        object.__setattr__(self, "_input_type", _model_api(input_type, "input_type"))
        object.__setattr__(self, "_output_type", _model_api(output_type, "output_type"))
        object.__setattr__(self, "_lit_server", None)
        object.__setattr__(self, "_lit_closing", False)
        object.__setattr__(self, "_lit_server_lock", threading.Lock())
        self.ready = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("on_exit")
        if hook is not None and not getattr(hook, "_lit_closes_server", False):
            cls.on_exit = _closing_first(hook)  # type: ignore[method-assign]

    def on_exit(self) -> None:
        """The flow stopped the work: stop taking requests and close the port. (A subclass's on_exit() runs after
        this, without having to call super().)"""
        self._lit_close()

    def _lit_close(self) -> None:
        """Called by lit's agent, in its own thread, before it reports the work stopped and ends the process: the
        port is closed by the time the flow sees `has_stopped`, and no request is half answered."""
        with self._lit_server_lock:
            if self._lit_closing:
                return
            object.__setattr__(self, "_lit_closing", True)
            server = self._lit_server
        if server is not None:
            server.shutdown()  # returns once serve_forever() has: requests already accepted are answered
            server.server_close()
            server.endpoint.close()

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Called once in the work's process, with run()'s arguments, before the server listens. Override it to
        load the model."""

    def configure_input_type(self) -> type:
        return self._input_type

    def configure_output_type(self) -> type:
        return self._output_type

    @abc.abstractmethod
    def predict(self, request: Any) -> Any:
        """Answer one request: `request` is an `input_type` instance; return a dict or an `output_type` instance.
        Requests are served in threads, so predict() may run for several requests at once. May be `async`."""

    @staticmethod
    def _get_sample_dict_from_datatype(datatype: Any) -> dict[str, Any]:
        """A sample body for `datatype`: its get_sample_data(), or placeholder values from its JSON schema."""
        if hasattr(datatype, "get_sample_data"):
            return datatype.get_sample_data()
        placeholders = {"string": "data string", "number": 0.0, "integer": 0, "boolean": False}
        out: dict[str, Any] = {}
        for key, prop in _schema(datatype).get("properties", {}).items():
            if prop.get("type") not in placeholders:
                raise TypeError(f"no sample value for field {key!r} of {datatype.__name__}")
            out[key] = placeholders[prop["type"]]
        return out

    def get_code_sample(self, url: str) -> Optional[str]:
        """A client in Python for `url` (the predict URL), when both types have samples; else None."""
        input_type: Any = self.configure_input_type()
        output_type: Any = self.configure_output_type()
        if not (hasattr(input_type, "request_code_sample") and hasattr(output_type, "response_code_sample")):
            return None
        return f"{input_type.request_code_sample(url)}\n{output_type.response_code_sample()}"

    def _lit_make_server(self, host: str, port: int) -> _Server:
        """The bound, listening server for this work (not yet serving)."""
        endpoint = _Endpoint(type(self).__name__, self.predict, _model_api(self.configure_input_type(), "input_type"),
                             _model_api(self.configure_output_type(), "output_type"))
        try:
            return _Server((host, port), endpoint)
        except BaseException:
            endpoint.close()
            raise

    def run(self, *args: Any, **kwargs: Any) -> None:
        self.setup(*args, **kwargs)
        server = self._lit_make_server(self.host, self.port if self.port is not None else 0)
        with self._lit_server_lock:
            closing = self._lit_closing
            object.__setattr__(self, "_lit_server", server)
        if not closing:
            # Ready once the socket listens: from here a connection waits in the backlog until it is accepted, so
            # the flow may hand work.url to a caller as soon as it sees ready.
            self.ready = True
            server.serve_forever(poll_interval=0.1)  # the interval bounds how long on_exit() waits for it
        # Only a stop ends serve_forever(), and lit ends this process right after it: run() must not report
        # success (or anything) in between, so it waits for that end.
        threading.Event().wait()
