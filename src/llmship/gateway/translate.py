"""OpenAI requests in, each target's own payload out, and answers back into OpenAI shapes.

    OpenAI body ──► Ask (one neutral request) ──► HF toolkit JSON   (SageMaker)
                                              └─► Converse request  (Bedrock)
                                              └─► OpenAI body       (an OpenAI server)
    target answer ──► Answer / Delta pieces ──► OpenAI JSON or SSE chunks, with usage

OpenAI bodies are parsed, and OpenAI answers built, by llmship.protocol.openai, as the model
server's are; what is the gateway's own is the Ask and what each target can take (a
field a target cannot honour is a 400 saying so). Pure functions: no I/O, so every mapping
is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmship.protocol.openai import (
    BadRequest,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    chat_messages,
    completion_prompt,
    include_usage,
    parse_request,
    sampling,
    token_limit,
)

# OpenAI parameters passed on to an OpenAI server target as they are.
OPTIONS = ("presence_penalty", "frequency_penalty", "logit_bias", "min_tokens")
# Converse stop reasons -> OpenAI finish reasons
STOP_REASONS = {"max_tokens": "length", "content_filtered": "content_filter"}


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
    ignore_eos: bool = False  # only an OpenAI server target takes it
    # presence_penalty, frequency_penalty, logit_bias, min_tokens when asked: an OpenAI
    # server target takes them as they are; the others map or refuse them (see _options)
    options: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None  # JSON answers: only llmship serve takes it

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
    if chat:
        request: ChatRequest | CompletionRequest = parse_request(
            body, ChatRequest, "model", "messages"
        )
    else:
        request = parse_request(body, CompletionRequest, "model", "prompt")
    if not request["model"]:
        raise BadRequest("missing required parameter: model (the route name)", "model")
    limit = token_limit(request, chat)
    limit = max_tokens_cap if limit is None else limit
    if limit > max_tokens_cap:
        raise BadRequest(
            f"max_tokens {limit} is over this route's limit of {max_tokens_cap}", "max_tokens"
        )
    if chat:
        messages = _messages(request["messages"])
        prompt = flatten(messages)
    else:
        messages, prompt = [], _prompt(request)
    chosen = sampling(request)
    return Ask(
        route=request["model"],
        chat=chat,
        messages=messages,
        prompt=prompt,
        max_tokens=limit,
        temperature=chosen.temperature,
        top_p=chosen.top_p,
        stop=list(chosen.stop),
        seed=chosen.seed,
        stream=bool(request.get("stream")),
        include_usage=include_usage(request),
        ignore_eos=chosen.ignore_eos,
        options={name: request[name] for name in OPTIONS if request.get(name)},
        response_format=_json_format(request),
    )


def _json_format(request: ChatRequest | CompletionRequest) -> dict[str, Any] | None:
    """response_format when it asks for JSON (the protocol checked OpenAI's rules)."""
    chosen = request.get("response_format")
    return dict(chosen) if chosen and chosen["type"] != "text" else None


def _messages(raw: list[ChatMessage]) -> list[dict[str, str]]:
    """The conversation as the targets take it: system, user and assistant turns, the last
    not the assistant's."""
    out = chat_messages(raw)
    for index, message in enumerate(out):
        if message["role"] not in ("system", "user", "assistant"):
            raise BadRequest(
                f"messages[{index}] needs a role: system, user or assistant", "messages"
            )
    if out[-1]["role"] == "assistant":
        raise BadRequest("the last message must not be the assistant's", "messages")
    return out


def _prompt(request: CompletionRequest) -> str:
    prompt = completion_prompt(request)
    if not isinstance(prompt, str):
        raise BadRequest(
            "prompt as token ids cannot go through the gateway: its targets take text", "prompt"
        )
    return prompt


def _options(ask: Ask, target: str, mapped: dict[str, str]) -> dict[str, Any]:
    """The options a target takes under its own names (`mapped`); a 400 naming the first it
    has no parameter for."""
    for name in ask.options:
        if name not in mapped:
            raise BadRequest(f"{name} cannot be passed to {target}: it has no such parameter", name)
    return {mapped[name]: value for name, value in ask.options.items()}


def _refuse_ignore_eos(ask: Ask, target: str, why: str) -> None:
    if ask.ignore_eos:
        raise BadRequest(f"ignore_eos cannot be passed to {target}: {why}", "ignore_eos")


def _refuse_response_format(ask: Ask, target: str) -> None:
    """JSON answers are constrained by llmship's own server; other targets would answer
    free text, so the caller hears it now."""
    if ask.response_format:
        raise BadRequest(
            f"response_format {ask.response_format['type']} cannot be passed to {target}: "
            "only an OpenAI server target (such as llmship serve) constrains answers to JSON",
            "response_format",
        )


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
    _refuse_ignore_eos(
        ask, "a SageMaker endpoint", "the Hugging Face toolkit has no such parameter"
    )
    _refuse_response_format(ask, "a SageMaker endpoint")
    parameters: dict[str, Any] = {"max_new_tokens": ask.max_tokens}
    if ask.temperature > 0:
        parameters.update(do_sample=True, temperature=ask.temperature)
        if ask.top_p < 1:
            parameters["top_p"] = ask.top_p
    else:
        parameters["do_sample"] = False
    if ask.stop:
        parameters["stop"] = ask.stop
    parameters.update(_options(ask, "a SageMaker endpoint", {"min_tokens": "min_new_tokens"}))
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
    _refuse_ignore_eos(ask, "Bedrock", "Converse has no such parameter")
    _options(ask, "Bedrock", {})
    _refuse_response_format(ask, "Bedrock")
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
