"""The SageMaker inference handler contract: code/inference.py's functions, called as
the inference toolkits call them.

    model_fn(model_dir[, context])
    input_fn(body, content_type[, context])
    predict_fn(data, model[, context])
    output_fn(prediction, accept[, context])      -> body, or (body, content_type)
    transform_fn(model, body, content_type, accept[, context])   (instead of the three)
    stream_fn(data, model[, context])             llmship's own: yields chunks to stream

The optional trailing `context` is detected by parameter count, as the toolkits do.
llmship serves the union of what the toolkits accept (a tuple from output_fn, as the
generic toolkit allows; streaming); `llmship validate` says what a given container
will not do. Only the code/inference.py of the artifact being served is ever run.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmship.errors import PackageError

JSON = "application/json"
ARITY = {
    "model_fn": 1,
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
    "transform_fn": 4,
    "stream_fn": 2,
}


class HandlerError(Exception):
    """A request the handler refused, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ServingContext:
    """What the toolkits hand a handler as `context`: the model directory and device."""

    model_dir: str
    system_properties: dict[str, Any] = field(default_factory=dict)


def status_of(exc: BaseException) -> int:
    """An exception's HTTP status: its own `status` (400-599) if it has one, else 500."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


class Handler:
    """The handler functions of one artifact, with the model they loaded."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        self.context = ServingContext(str(self.model_dir), {"model_dir": str(self.model_dir)})
        self.functions = _load_functions(self.model_dir / "code" / "inference.py")
        self.model: Any = None

    def _call(self, name: str, *args: Any) -> Any:
        function = self.functions[name]
        return function(*args, self.context) if _takes_context(name, function) else function(*args)

    def load(self) -> None:
        """Run model_fn (the slow part of start-up)."""
        if "model_fn" not in self.functions:
            raise PackageError(
                f"{self.model_dir}/code/inference.py defines no model_fn; llmship serves "
                "artifacts whose handler loads its own model"
            )
        self.model = self._call("model_fn", str(self.model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """One request: the response body and its content type."""
        if "transform_fn" in self.functions:
            result = self._call("transform_fn", self.model, body, content_type, accept)
        else:
            data = self._input(body, content_type)
            prediction = self._call("predict_fn", data, self.model)
            result = self._output(prediction, accept)
        return _as_response(result, accept)

    def can_stream(self) -> bool:
        return "stream_fn" in self.functions

    def stream(self, body: bytes, content_type: str) -> Iterator[bytes]:
        """Chunks from stream_fn; a handler without one answers in a single chunk."""
        data = self._input(body, content_type)
        for chunk in self._call("stream_fn", data, self.model):
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)

    def _input(self, body: bytes, content_type: str) -> Any:
        if "input_fn" in self.functions:
            return self._call("input_fn", body, content_type)
        if content_type.split(";")[0].strip() != JSON:
            raise HandlerError(f"unsupported content type {content_type!r}; send {JSON}", 415)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HandlerError(f"the body is not valid JSON: {exc}") from None

    def _output(self, prediction: Any, accept: str) -> Any:
        if "output_fn" in self.functions:
            return self._call("output_fn", prediction, accept)
        if accept not in ("", "*/*") and accept.split(";")[0].strip() != JSON:
            raise HandlerError(f"cannot answer in {accept!r}; ask for {JSON}", 406)
        return json.dumps(prediction)


def _as_response(result: Any, accept: str) -> tuple[bytes, str]:
    content_type = JSON if accept in ("", "*/*") else accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    if isinstance(result, str):
        result = result.encode("utf-8")
    if not isinstance(result, bytes | bytearray):
        result = json.dumps(result).encode("utf-8")
    return bytes(result), content_type


def _takes_context(name: str, function: Callable) -> bool:
    count = len(
        [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    )
    if count == ARITY[name] + 1:
        return True
    if count == ARITY[name]:
        return False
    raise PackageError(
        f"code/inference.py: {name} takes {count} parameters; the contract "
        f"calls it with {ARITY[name]} (or {ARITY[name] + 1} with context)"
    )


def _load_functions(path: Path) -> dict[str, Callable]:
    if not path.is_file():
        raise PackageError(f"{path} not found; an artifact's handler is code/inference.py")
    module_name = f"llmship_user_inference_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    code_dir = str(path.parent)
    sys.path.insert(0, code_dir)  # the handler may import its own helper modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PackageError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(code_dir)
    functions = {
        name: getattr(module, name) for name in ARITY if callable(getattr(module, name, None))
    }
    if "transform_fn" in functions and {"input_fn", "predict_fn", "output_fn"} & set(functions):
        raise PackageError(
            f"{path}: transform_fn cannot be combined with input_fn, predict_fn or output_fn"
        )
    if "transform_fn" not in functions and "predict_fn" not in functions:
        raise PackageError(f"{path} defines neither predict_fn nor transform_fn")
    for name, function in functions.items():
        _takes_context(name, function)  # refuse a wrong signature at start-up, not per request
    return functions
