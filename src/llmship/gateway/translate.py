"""OpenAI requests in, each target's own payload out, and answers back into OpenAI shapes.

    OpenAI body ──► Ask (one neutral request) ──► HF toolkit JSON   (SageMaker)
                                              └─► Converse request  (Bedrock)
                                              └─► OpenAI body       (an OpenAI server)
    target answer ──► Answer / Delta pieces ──► OpenAI JSON or SSE chunks, with usage

Pure functions: no I/O, so every mapping is tested on its own.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

COMMON = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "n",
    "user",
}
CHAT = COMMON | {"messages", "max_completion_tokens"}
COMPLETION = COMMON | {"prompt"}
# Converse stop reasons -> OpenAI finish reasons
STOP_REASONS = {"max_tokens": "length", "content_filtered": "content_filter"}


class BadRequest(ValueError):
    """The caller's body is wrong (400, OpenAI's invalid_request_error)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class Ask:
    """One request, whatever the target: what the caller asked for."""

    route: str
    chat: bool
    messages: list[dict[str, str]]  # chat: [{"role", "content"}]; completions: []
    prompt: str  # completions: the prompt; chat: the flattened conversation
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False

    @property
    def text(self) -> str:
        """All the prompt text (for counting tokens and the optional prompt log)."""
        return self.prompt


@dataclass
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int | None = None  # None: the target did not say
    completion_tokens: int | None = None


@dataclass
class Delta:
    """A piece of a streamed answer; the last one carries the finish reason (and usage
    when the target reports it)."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def parse_openai(body: Any, chat: bool, max_tokens_cap: int) -> Ask:
    """An Ask from an OpenAI chat or completions body (400 for what we do not serve)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    allowed = CHAT if chat else COMPLETION
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unrecognized request argument: {unknown[0]}", unknown[0])
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("missing required parameter: model (the route name)", "model")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", "n")
    if chat:
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        limit = body.get("max_tokens", 16)  # OpenAI's default for completions
    limit = max_tokens_cap if limit is None else limit
    if not isinstance(limit, int) or limit < 1:
        raise BadRequest("max_tokens must be a positive integer", "max_tokens")
    if limit > max_tokens_cap:
        raise BadRequest(
            f"max_tokens {limit} is over this route's limit of {max_tokens_cap}", "max_tokens"
        )
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of strings", "stop")
    try:
        temperature = float(body.get("temperature", 1.0))
        top_p = float(body.get("top_p", 1.0))
    except (TypeError, ValueError):
        raise BadRequest("temperature and top_p must be numbers", "temperature") from None
    if chat:
        messages = _messages(body.get("messages"))
        prompt = flatten(messages)
    else:
        messages, prompt = [], _prompt(body.get("prompt"))
    return Ask(
        route=body["model"],
        chat=chat,
        messages=messages,
        prompt=prompt,
        max_tokens=limit,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        seed=body.get("seed"),
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list", "messages")
    out = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            raise BadRequest(
                f"messages[{index}] needs a role: system, user or assistant", "messages"
            )
        content = message.get("content") or ""
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise BadRequest(f"messages[{index}].content must be text", "messages")
        role = "system" if message["role"] == "developer" else message["role"]
        out.append({"role": role, "content": content})
    if out[-1]["role"] == "assistant":
        raise BadRequest("the last message must not be the assistant's", "messages")
    return out


def _prompt(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        raw = raw[0]
    if not isinstance(raw, str) or not raw:
        raise BadRequest("prompt must be a non-empty string", "prompt")
    return raw


def flatten(messages: list[dict[str, str]]) -> str:
    """The text a plain-text target gets for a conversation. One user message (with or
    without a system message before it) is sent as it is: llmship's own artifacts wrap it
    in the prompt template and chat template they were trained with. Longer
    conversations become `role: content` paragraphs."""
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


# ---- SageMaker (Hugging Face inference toolkit JSON) -------------------------------------


def to_toolkit(ask: Ask) -> dict[str, Any]:
    """{"inputs": text, "parameters": {...}} as the HF toolkit and llmship's handler read it."""
    parameters: dict[str, Any] = {"max_new_tokens": ask.max_tokens}
    if ask.temperature > 0:
        parameters.update(do_sample=True, temperature=ask.temperature)
        if ask.top_p < 1:
            parameters["top_p"] = ask.top_p
    else:
        parameters["do_sample"] = False
    if ask.stop:
        parameters["stop"] = ask.stop
    return {"inputs": ask.prompt, "parameters": parameters}


def toolkit_to_ask(route: str, body: Any, max_tokens_cap: int) -> Ask:
    """The SageMaker payload route's body as an Ask (for targets that are not SageMaker)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        raise BadRequest('the body must be {"inputs": "<text>", "parameters": {...}}', "inputs")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest('"parameters" must be a JSON object', "parameters")
    limit = int(parameters.get("max_new_tokens", min(128, max_tokens_cap)))
    if limit > max_tokens_cap:
        raise BadRequest(
            f"max_new_tokens {limit} is over this route's limit of {max_tokens_cap}",
            "max_new_tokens",
        )
    sampling = bool(parameters.get("do_sample", False))
    stop = parameters.get("stop") or []
    return Ask(
        route=route,
        chat=False,
        messages=[],
        prompt=body["inputs"],
        max_tokens=limit,
        temperature=float(parameters.get("temperature", 1.0)) if sampling else 0.0,
        top_p=float(parameters.get("top_p", 1.0)),
        stop=[stop] if isinstance(stop, str) else list(stop),
    )


# ---- Bedrock (Converse) ------------------------------------------------------------------


def to_converse(ask: Ask) -> dict[str, Any]:
    """Converse's messages, system and inferenceConfig (consecutive turns of one role are
    merged: Converse wants user and assistant to alternate)."""
    system = [{"text": m["content"]} for m in ask.messages if m["role"] == "system"]
    turns = [m for m in ask.messages if m["role"] != "system"] or [
        {"role": "user", "content": ask.prompt}
    ]
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if messages and messages[-1]["role"] == turn["role"]:
            messages[-1]["content"].append({"text": turn["content"]})
        else:
            messages.append({"role": turn["role"], "content": [{"text": turn["content"]}]})
    inference: dict[str, Any] = {"maxTokens": ask.max_tokens, "temperature": ask.temperature}
    if ask.top_p < 1:
        inference["topP"] = ask.top_p
    if ask.stop:
        inference["stopSequences"] = ask.stop
    request: dict[str, Any] = {"messages": messages, "inferenceConfig": inference}
    if system:
        request["system"] = system
    return request


def from_converse(response: dict[str, Any]) -> Answer:
    content = response.get("output", {}).get("message", {}).get("content", [])
    usage = response.get("usage", {})
    return Answer(
        text="".join(block.get("text", "") for block in content),
        finish_reason=STOP_REASONS.get(response.get("stopReason", ""), "stop"),
        prompt_tokens=usage.get("inputTokens"),
        completion_tokens=usage.get("outputTokens"),
    )


# ---- back to OpenAI ----------------------------------------------------------------------


def openai_meta(ask: Ask) -> dict[str, Any]:
    return {
        "id": f"{'chatcmpl' if ask.chat else 'cmpl'}-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": ask.route,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def openai_answer(ask: Ask, meta: dict, answer: Answer, tokens: tuple[int, int]) -> dict:
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": answer.finish_reason}
    if ask.chat:
        choice["message"] = {"role": "assistant", "content": answer.text}
    else:
        choice["text"] = answer.text
    return {
        **meta,
        "object": "chat.completion" if ask.chat else "text_completion",
        "choices": [choice],
        "usage": usage(*tokens),
    }


def sse_chunk(ask: Ask, meta: dict, text: str | None, reason: str | None, first=False) -> str:
    """One `data:` event of an OpenAI stream."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
    if ask.chat:
        choice["delta"] = (
            {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
        )
    else:
        choice["text"] = text or ""
    kind = "chat.completion.chunk" if ask.chat else "text_completion"
    return f"data: {json.dumps({**meta, 'object': kind, 'choices': [choice]})}\n\n"


def sse_usage(ask: Ask, meta: dict, tokens: tuple[int, int]) -> str:
    kind = "chat.completion.chunk" if ask.chat else "text_completion"
    return (
        f"data: {json.dumps({**meta, 'object': kind, 'choices': [], 'usage': usage(*tokens)})}\n\n"
    )


def sse_error(message: str, kind: str = "server_error") -> str:
    return f"data: {json.dumps({'error': {'message': message, 'type': kind}})}\n\n"
