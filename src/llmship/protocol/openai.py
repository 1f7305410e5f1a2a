"""OpenAI's chat and completions API, parsed and written once for the model server and the
gateway: request models, the checks both apply, and the answers, chunks and errors they send.

    body ──► parse_request ──► ChatRequest | CompletionRequest (the client's dict, checked)
             chat_messages, completion_prompt, token_limit, sampling, include_usage
    Reply.body / Reply.chunk / Reply.usage_chunk ──► chat.completion, chat.completion.chunk,
             text_completion JSON; server-sent events `data: {...}` ending in DONE

Requests are TypedDicts checked by pydantic, so both sides read the plain dict the client
sent with its types checked. Unknown fields get a 400 naming them (OpenAI's contract);
known fields that nothing behind llmship can honour are accepted at their default value
and refused with the reason otherwise. Torch-free and boto3-free: the gateway's Lambda zip
holds it; the validators are built on first use, not at import.
"""

from __future__ import annotations

import json
import operator
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, Required, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from llmship.protocol.strict_schema import strict_violation

DONE = "data: [DONE]\n\n"
PositiveInt = Annotated[int, Field(ge=1)]
# Inside a message, fields we do not read (name, ...) are ignored, as OpenAI's
# servers ignore what a role does not use; at the top level they are refused.
OPEN = ConfigDict(extra="ignore")
CLOSED = ConfigDict(extra="forbid", allow_inf_nan=False)


class BadRequest(ValueError):
    """The caller's body is wrong: a 400, OpenAI's invalid_request_error, naming `param`."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@with_config(OPEN)
class TextPart(TypedDict, total=False):
    type: Required[str]
    text: str


@with_config(OPEN)
class ChatMessage(TypedDict, total=False):
    role: Required[str]
    content: str | list[TextPart] | None
    tool_calls: list[dict[str, Any]] | None  # an assistant's (read by protocol.tools)
    tool_call_id: str | None  # a tool message's


@with_config(OPEN)
class StreamOptions(TypedDict, total=False):
    include_usage: bool | None


@with_config(OPEN)
class JsonSchemaFormat(TypedDict, total=False):
    name: Required[Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]]
    description: str | None
    schema: dict[str, Any]
    strict: bool | None


@with_config(OPEN)
class ResponseFormat(TypedDict, total=False):
    type: Required[Literal["text", "json_object", "json_schema"]]
    json_schema: JsonSchemaFormat


class _Common(TypedDict, total=False):
    model: str
    max_tokens: PositiveInt | None
    temperature: float | None
    top_p: float | None
    stop: str | list[str] | None
    seed: int | None
    stream: bool | None
    stream_options: StreamOptions | None
    n: int | None
    user: str | None
    presence_penalty: float | None
    frequency_penalty: float | None
    ignore_eos: bool | None  # vLLM's extension, which serving benchmarks send
    logit_bias: dict[str, float] | None  # token id (as a string) -> bias in [-100, 100]
    min_tokens: int | None  # vLLM's extension: no EOS nor stop sequence before this many


@with_config(CLOSED)
class ChatRequest(_Common, total=False):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage]
    max_completion_tokens: PositiveInt | None
    logprobs: bool | None
    top_logprobs: int | None
    tools: list[dict[str, Any]] | None  # checked by protocol.tools where tools are served
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormat | None


@with_config(CLOSED)
class CompletionRequest(_Common, total=False):
    """POST /v1/completions."""

    prompt: str | list[str] | list[int] | list[list[int]]
    response_format: ResponseFormat | None  # vLLM's extension of completions
    logprobs: int | None
    echo: bool | None
    suffix: str | None


RequestT = TypeVar("RequestT", ChatRequest, CompletionRequest)
NO_LOGPROBS = (
    "not served here: llmship's model server (llmship serve) returns them; the gateway's "
    "answers carry the text only"
)
TOOLS_ELSEWHERE = "tools are not served here: llmship's model server (llmship serve) calls them"
# Known fields served only at their default unless the caller serves them:
# name -> (is this value honoured?, why not)
DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (
        lambda value: value in (None, 1),
        "n > 1 is not served here: llmship's model server (llmship serve) serves it",
    ),
    "logprobs": (operator.not_, f"logprobs are {NO_LOGPROBS}"),
    "top_logprobs": (operator.not_, f"top_logprobs are {NO_LOGPROBS}"),
    "echo": (operator.not_, "echo is not supported: the answer holds the completion only"),
    "suffix": (operator.not_, "suffix is not supported: the models complete at the end only"),
    "tools": (operator.not_, TOOLS_ELSEWHERE),
    "tool_choice": (lambda value: value in (None, "none", "auto"), TOOLS_ELSEWHERE),
    "parallel_tool_calls": (lambda value: value is None, TOOLS_ELSEWHERE),
}
# The names inside a request's fields: past the field itself, any other string in an
# error's location is the tag of a union member (`stop` -> 'list[str]').
INNER_FIELDS = frozenset(
    name
    for model in (TextPart, ChatMessage, StreamOptions, ResponseFormat, JsonSchemaFormat)
    for name in model.__annotations__
)


@cache
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def parse_request(
    body: Any, kind: type[RequestT], *required: str, served: Collection[str] = ()
) -> RequestT:
    """`body` (decoded JSON) as a `kind` request, or a BadRequest naming the field: unknown
    fields first, then the `required` ones missing, then wrong types, then values that
    the caller does not honour (those of DEFAULT_ONLY not `served`)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        request = _adapter(kind).validate_python(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise BadRequest(
                f"unrecognized request argument{plural}: {', '.join(unknown)}", unknown[0]
            ) from None
        _require(body, required)
        raise _invalid(errors) from None
    _require(request, required)
    for name, (honoured, why) in DEFAULT_ONLY.items():
        if name in request and name not in served and not honoured(request[name]):
            raise BadRequest(why, name)
    _check_response_format(request)
    return request


def _check_response_format(request: ChatRequest | CompletionRequest) -> None:
    """OpenAI's rules for JSON answers: json_schema needs its schema (and, when strict, one
    within the strict subset); json_object needs the word "json" in the messages. A stop
    sequence would cut the JSON short, so it is refused beside either."""
    kind = (request.get("response_format") or {}).get("type", "text")
    if kind == "text":
        return
    if request.get("stop"):
        raise BadRequest(
            f"stop cannot be combined with response_format {kind}: a stop sequence would cut "
            "the JSON short",
            "stop",
        )
    if kind == "json_object":
        texts = [_text(m.get("content")) for m in request.get("messages") or []]
        if "messages" in request and not any("json" in t.lower() for t in texts):
            raise BadRequest(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )
        return
    spec = request["response_format"].get("json_schema")
    if spec is None:
        raise BadRequest(
            "missing required parameter: response_format.json_schema", "response_format"
        )
    if not isinstance(spec.get("schema"), dict):
        raise BadRequest(
            "missing required parameter: response_format.json_schema.schema (the answer is "
            "constrained to it)",
            "response_format",
        )
    violation = strict_violation(spec["schema"]) if spec.get("strict") else None
    if violation:
        raise BadRequest(
            f"Invalid schema for response_format {spec['name']!r}: {violation}", "response_format"
        )


def _text(content: str | list[TextPart] | None) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content)
    return content or ""


def _require(body: Mapping[str, Any], required: Iterable[str]) -> None:
    for name in required:
        if name not in body:
            raise BadRequest(f"missing required parameter: {name}", name)


def _invalid(errors: list[ErrorDetails]) -> BadRequest:
    """The first error as one sentence; a union's errors (one per member) as the choice."""
    first = errors[0]
    path, _ = _path(first["loc"])
    param = str(first["loc"][0])
    if first["type"] == "missing":
        return BadRequest(f"missing required parameter: {path}", param)
    members = [tag for where, tag in map(_path, (e["loc"] for e in errors)) if where == path]
    if all(members) and len(members) > 1:
        return BadRequest(f"{path} must be {' or '.join(dict.fromkeys(members))}", param)
    return BadRequest(f"{path}: {first['msg']}", param)


def _path(loc: tuple[int | str, ...]) -> tuple[str, str | None]:
    """`messages[0].content` from ('messages', 0, 'content', 'str'), and the union member
    the error is about ('str'), if any."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not path:
            path = part
        elif part in INNER_FIELDS:
            path += f".{part}"
        else:
            return path, part
    return path, None


# ---- what the request asks for ------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens, with OpenAI's defaults for what the request left out."""

    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    min_tokens: int = 0
    logprobs: int | None = None  # None: not asked; k: the chosen token's and the top k


def sampling(request: ChatRequest | CompletionRequest) -> Sampling:
    """The request's sampling, OpenAI's ranges checked (a 400 naming the parameter)."""
    stop = request.get("stop") or ()
    temperature, top_p = request.get("temperature"), request.get("top_p")
    n = _within(request, "n", 1, 128, 1)
    min_tokens = _within(request, "min_tokens", 0, None, 0)
    return Sampling(
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        seed=request.get("seed"),
        ignore_eos=bool(request.get("ignore_eos")),
        n=int(n),
        presence_penalty=_within(request, "presence_penalty", -2.0, 2.0, 0.0),
        frequency_penalty=_within(request, "frequency_penalty", -2.0, 2.0, 0.0),
        logit_bias=_logit_bias(request.get("logit_bias") or {}),
        min_tokens=int(min_tokens),
        logprobs=_logprobs(request),
    )


def _within(request: Mapping[str, Any], name: str, low: float, high: float | None, default):
    value = request.get(name)
    if value is None:
        return default
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be {bounds}; got {value}", name)
    return value


def _logit_bias(bias: Mapping[str, float]) -> dict[int, float]:
    """OpenAI's logit_bias: token ids as strings, each bias in [-100, 100]."""
    out = {}
    for key, value in bias.items():
        if not key.isdigit():
            raise BadRequest(f"logit_bias keys must be token ids; got {key!r}", "logit_bias")
        if not -100 <= value <= 100:
            raise BadRequest(
                f"logit_bias[{key}] must be between -100 and 100; got {value}", "logit_bias"
            )
        out[int(key)] = float(value)
    return out


def _logprobs(request: Mapping[str, Any]) -> int | None:
    """How many top tokens to return beside each chosen one; None when not asked. Chat asks
    with logprobs: true and top_logprobs (0-20); completions with logprobs: k (0-5)."""
    logprobs, top = request.get("logprobs"), request.get("top_logprobs")
    if "messages" in request:
        if top is not None and not logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", "top_logprobs")
        return _within(request, "top_logprobs", 0, 20, 0) if logprobs else None
    return None if logprobs is None else _within(request, "logprobs", 0, 5, 0)


def token_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def chat_logprobs(entries: list[tuple[str, float, list[tuple[str, float]]]]) -> dict[str, Any]:
    """choices[i].logprobs of a chat answer from (token, logprob, [(token, logprob)])."""
    content = [
        {
            "token": token,
            "logprob": logprob,
            "bytes": token_bytes(token),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": token_bytes(t)} for t, lp in top],
        }
        for token, logprob, top in entries
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(
    entries: list[tuple[str, float, list[tuple[str, float]]]], offset: int = 0
) -> dict[str, Any]:
    """choices[i].logprobs of a completion: tokens, token_logprobs, top_logprobs and the
    text_offset of each token (from `offset`, the characters before this piece)."""
    offsets = []
    for token, _, _ in entries:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": [token for token, _, _ in entries],
        "token_logprobs": [logprob for _, logprob, _ in entries],
        "top_logprobs": [dict(top) for _, _, top in entries],
        "text_offset": offsets,
    }


def token_limit(request: ChatRequest | CompletionRequest, chat: bool) -> int | None:
    """The most tokens to generate; None leaves it to the server. Chat's
    max_completion_tokens wins over its older max_tokens; completions default to 16, as
    OpenAI's do."""
    if chat:
        return request.get("max_completion_tokens", request.get("max_tokens"))
    return request.get("max_tokens", 16)


def include_usage(request: ChatRequest | CompletionRequest) -> bool:
    return bool((request.get("stream_options") or {}).get("include_usage"))


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """[{"role", "content"}] with text content: a content of parts joined, the developer
    role (OpenAI's newer name for system) as system."""
    if not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    out = []
    for index, message in enumerate(messages):
        content = message.get("content") or ""
        if isinstance(content, list):
            for part in content:
                if part["type"] != "text":
                    raise BadRequest(
                        f"messages[{index}].content: {part['type']!r} parts are not "
                        "supported; the models read text only",
                        "messages",
                    )
            content = "".join(part.get("text", "") for part in content)
        role = "system" if message["role"] == "developer" else message["role"]
        out.append({"role": role, "content": content})
    return out


def completion_prompt(request: CompletionRequest) -> str | list[int]:
    """The one prompt of a completions request: text or token ids (a list of one prompt
    counts as that prompt; more are refused, as n > 1 is)."""
    prompt = request["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return prompt
    raise BadRequest("prompt must be a non-empty string or list of token ids", "prompt")


# ---- answers -------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def event(data: Mapping[str, Any]) -> str:
    """One server-sent event of an OpenAI stream."""
    return f"data: {json.dumps(data)}\n\n"


def error_event(message: str, kind: str = "server_error") -> str:
    """A failure after the stream began (its status is already 200)."""
    return event({"error": {"message": message, "type": kind}})


def error_body(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def model_list(names: Iterable[str]) -> dict[str, Any]:
    """GET /v1/models."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "llmship"} for name in names]
    return {"object": "list", "data": data}


@dataclass(frozen=True)
class Reply:
    """One answer: the id, time and model its JSON body or each of its chunks carries; the
    n choices of one request are Replies that differ in `index` only."""

    chat: bool
    model: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    index: int = 0

    def _head(self, kind: str) -> dict[str, Any]:
        prefix = "chatcmpl" if self.chat else "cmpl"
        head = {"id": f"{prefix}-{self.key}", "created": self.created, "model": self.model}
        return {**head, "object": kind}

    def body(
        self,
        text: str | None,
        finish_reason: str,
        used: dict[str, int],
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The whole answer: chat.completion (with the `tool_calls` it makes, if any) or
        text_completion."""
        choice: dict[str, Any] = {
            "index": self.index,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
            if tool_calls:
                choice["message"]["tool_calls"] = tool_calls
        else:
            choice["text"] = text
        kind = "chat.completion" if self.chat else "text_completion"
        return {**self._head(kind), "choices": [choice], "usage": used}

    def chunk(
        self,
        text: str | None,
        finish_reason: str | None,
        *,
        first: bool = False,
        logprobs: dict[str, Any] | None = None,
    ) -> str:
        """A piece of a streamed answer (with its tokens' `logprobs` when asked); a chat
        stream's `first` chunk names the role."""
        choice: dict[str, Any] = {
            "index": self.index,
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
        if self.chat:
            choice["delta"] = (
                {"role": "assistant", "content": ""}
                if first
                else ({"content": text} if text else {})
            )
        else:
            choice["text"] = text or ""
        return event({**self._head(self._chunk_kind), "choices": [choice]})

    def tool_call_chunks(self, index: int, call: dict[str, Any]) -> list[str]:
        """A tool call streamed as OpenAI streams one: its id, type and name with empty
        arguments, then the arguments."""
        function = call["function"]
        opening = {**call, "index": index, "function": {"name": function["name"], "arguments": ""}}
        rest = {"index": index, "function": {"arguments": function["arguments"]}}
        return [self._delta({"tool_calls": [opening]}), self._delta({"tool_calls": [rest]})]

    def _delta(self, delta: dict[str, Any]) -> str:
        choice = {"index": self.index, "logprobs": None, "finish_reason": None, "delta": delta}
        return event({**self._head(self._chunk_kind), "choices": [choice]})

    def usage_chunk(self, used: dict[str, int]) -> str:
        """The last chunk when stream_options.include_usage asks for it."""
        return event({**self._head(self._chunk_kind), "choices": [], "usage": used})

    @property
    def _chunk_kind(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"
