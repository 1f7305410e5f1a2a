"""OpenAI tool calling over a model's own chat template: which tool-call family the template
speaks, the request's tools checked as OpenAI checks them, and the model's text parsed back
into OpenAI `tool_calls`.

    request tools + tool_choice ──► tool_use(request, chat_template) ──► ToolUse | None
    ToolUse.tools ──► the chat template (it tells the model how to call)
    ToolUse.schema ──► a JSON schema the answer is held to when a call is forced
    model text ──► ToolUse.parse ──► Parsed(content, calls)

Two families: Hermes (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, Qwen,
Hermes, the tiny model) and Llama 3.1 (a bare `{"name": ..., "parameters": {...}}`). Text that
does not parse as the family's calls is the answer's content, never an error: a model may
write anything. Pure and torch-free, so the gateway can use it too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llmship.protocol.openai import BadRequest, ChatRequest
from llmship.protocol.strict_schema import strict_violation

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text: OpenAI's `function.arguments`

    def openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Parsed:
    content: str | None
    calls: tuple[ToolCall, ...] = ()


# A family's splitter: the model's text -> (content before the calls, each call's JSON text),
# or None when the text is not calls in that family's format.
Split = Callable[[str], "tuple[str, list[str]] | None"]


@dataclass(frozen=True)
class Family:
    """One way of writing tool calls: how to spot it in a chat template, how to parse it."""

    name: str
    marker: str  # text only a template of this family holds
    arguments_key: str  # the key a call's arguments sit under
    prefill: str  # what opens a call: put after the prompt when a call is forced
    split: Split


def _hermes_calls(text: str) -> tuple[str, list[str]] | None:
    """Content, then `<tool_call>{...}</tool_call>` blocks with only space between them; the
    last may be unclosed (the answer ran to its end)."""
    opening, closing = "<tool_call>", "</tool_call>"
    at = text.find(opening)
    if at < 0:
        return None
    content, bodies = text[:at], []
    while at < len(text):
        if not text.startswith(opening, at):
            return None
        end = text.find(closing, at)
        end = len(text) if end < 0 else end
        bodies.append(text[at + len(opening) : end])
        at = _skip_space(text, end + len(closing))
    return content, bodies


def _llama_calls(text: str) -> tuple[str, list[str]] | None:
    """A bare JSON call, or several joined by `;`, optionally after `<|python_tag|>`."""
    text = text.strip().removeprefix("<|python_tag|>").lstrip()
    if not text.startswith("{"):
        return None
    bodies, at, decoder = [], 0, json.JSONDecoder()
    while at < len(text):
        try:
            _, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        bodies.append(text[at:end])
        at = _skip_space(text, end)
        if text.startswith(";", at):
            at = _skip_space(text, at + 1)
    return "", bodies


def _skip_space(text: str, at: int) -> int:
    return len(text) - len(text[at:].lstrip()) if at < len(text) else len(text)


HERMES = Family("hermes", "<tool_call>", "arguments", "<tool_call>\n", _hermes_calls)
LLAMA3 = Family(
    "llama3", '"parameters": dictionary of argument name', "parameters", "", _llama_calls
)
FAMILIES = (HERMES, LLAMA3)


def family_of(chat_template: str | Mapping[str, str] | None) -> Family | None:
    """The family a chat template writes tool calls in (a tokenizer's named templates: its
    `tool_use` one, else its default), or None."""
    if isinstance(chat_template, Mapping):
        chat_template = chat_template.get("tool_use") or chat_template.get("default")
    return next((f for f in FAMILIES if chat_template and f.marker in chat_template), None)


def parse(family: Family, text: str, parallel: bool = True) -> Parsed:
    """The model's text as content and calls; text that is not the family's calls, or any
    malformed call, leaves the whole text as content."""
    split = family.split(text)
    calls = [_call(body, family.arguments_key) for body in (split[1] if split else [])]
    if not calls or None in calls:
        return Parsed(text)
    return Parsed(split[0].strip() or None, tuple(calls if parallel else calls[:1]))


def _call(body: str, arguments_key: str) -> ToolCall | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get(arguments_key, data.get("arguments", {}))
    if not isinstance(arguments, dict):
        return None
    text = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", data["name"], text)


# ---- the request ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolUse:
    """What a request's tools ask of the model: the family its template speaks, the tools
    for the template, and the function(s) a call is forced to (empty: the model chooses)."""

    family: Family
    tools: list[dict[str, Any]]
    forced: tuple[str, ...]
    parallel: bool

    @property
    def prefill(self) -> str:
        return self.family.prefill if self.forced else ""

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one call to a forced function, the family's keys around its
        parameters (the text after `prefill`): a forced answer is one call, which always
        parses, where OpenAI's may hold several."""
        options = [self._call_schema(name) for name in self.forced]
        return options[0] if len(options) == 1 else {"anyOf": options}

    def _call_schema(self, name: str) -> dict[str, Any]:
        function = next(t["function"] for t in self.tools if t["function"]["name"] == name)
        key = self.family.arguments_key
        return {
            "type": "object",
            "properties": {
                "name": {"const": name},
                key: function.get("parameters") or NO_PARAMETERS,
            },
            "required": ["name", key],
            "additionalProperties": False,
        }

    def parse(self, generated: str) -> Parsed:
        return parse(self.family, self.prefill + generated, self.parallel)

    def content_end(self, generated: str) -> int:
        """How much of the text generated so far is surely content, safe to stream before
        the answer ends: up to where a call opens, or may be opening (a forced answer is
        all call)."""
        if self.forced:
            return 0
        opening = self.family.prefill.strip() or "{"
        at = generated.find(opening)
        if at >= 0:
            return at
        held = next(
            (n for n in range(len(opening) - 1, 0, -1) if generated.endswith(opening[:n])), 0
        )
        return len(generated) - held


def tool_use(request: ChatRequest, chat_template: str | Mapping[str, str] | None) -> ToolUse | None:
    """The request's tools checked as OpenAI checks them; None when there are none or
    tool_choice is "none" (the model answers in text)."""
    tools = request.get("tools") or []
    names = [_check_tool(index, tool) for index, tool in enumerate(tools)]
    choice = request.get("tool_choice")
    parallel = request.get("parallel_tool_calls")
    if parallel is not None and not tools:
        raise BadRequest(
            "parallel_tool_calls is only allowed when tools are given", "parallel_tool_calls"
        )
    forced = _forced(choice, names)
    if not tools or choice == "none":
        return None
    family = family_of(chat_template)
    if family is None:
        raise BadRequest(
            "tools cannot be used with this model: its chat template has no tool support "
            "(it writes no Hermes <tool_call> or Llama 3.1 JSON tool calls)",
            "tools",
        )
    return ToolUse(family, tools, forced, parallel is not False)


def _forced(choice: Any, names: list[str]) -> tuple[str, ...]:
    if choice in (None, "auto", "none"):
        return ()
    if not names:
        raise BadRequest("tool_choice is only allowed when tools are given", "tool_choice")
    if choice == "required":
        return tuple(names)
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name is None:
        raise BadRequest(
            'tool_choice must be "none", "auto", "required" or '
            '{"type": "function", "function": {"name": ...}}',
            "tool_choice",
        )
    if name not in names:
        raise BadRequest(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
    return (name,)


def _check_tool(index: int, tool: Any) -> str:
    where = f"tools[{index}]"
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise BadRequest(f'{where}.type must be "function"', "tools")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.function.name is required", "tools")
    if not NAME.match(function["name"]):
        raise BadRequest(f"{where}.function.name must be 1-64 letters, digits, _ or -", "tools")
    parameters = function.get("parameters")
    if parameters is not None and (
        not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
    ):
        raise BadRequest(f"{where}.function.parameters must be a JSON schema object", "tools")
    if function.get("strict"):
        problem = strict_violation(parameters or NO_PARAMETERS)
        if problem:
            raise BadRequest(f"{where}.function.parameters: {problem}", "tools")
    return function["name"]


def template_messages(messages: list[dict[str, Any]], raw: list[Mapping[str, Any]]) -> list:
    """Chat messages for a template, with the tool fields of the client's `raw` messages:
    an assistant's `tool_calls` (arguments as objects, as templates write them) and a tool
    message's `tool_call_id`."""
    out = []
    for index, (message, original) in enumerate(zip(messages, raw, strict=True)):
        message = dict(message)
        if original.get("tool_call_id") is not None:
            message["tool_call_id"] = original["tool_call_id"]
        if original.get("tool_calls"):
            message["tool_calls"] = [
                _template_call(f"messages[{index}].tool_calls[{n}]", call)
                for n, call in enumerate(original["tool_calls"])
            ]
        out.append(message)
    return out


def _template_call(where: str, call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.function.name is required", "messages")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (TypeError, json.JSONDecodeError):
        arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}.function.arguments must be a JSON object as text", "messages")
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }
