"""Tool calling on the OpenAI routes, with the official openai client: forced calls held to
the function's schema by the grammar, `auto` parsed from a scripted model's text, streamed
as OpenAI streams them; each family's parser on hand-written outputs."""

from __future__ import annotations

import json

import openai
import pytest

from llmship.engine.engine import Output
from llmship.package.build import build_artifact
from llmship.protocol.openai import BadRequest, ChatRequest, parse_request
from llmship.protocol.tools import HERMES, LLAMA3, family_of, parse, tool_use
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import limits_for

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def _function(name: str, properties: dict, strict: bool = True) -> dict:
    parameters = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {"name": name, "parameters": parameters, "strict": strict},
    }


WEATHER = _function(
    "get_weather",
    {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
)
TIME = _function("get_time", {"zone": {"type": "string", "enum": ["UTC", "CET"]}})
ENUMS = {"get_weather": WEATHER, "get_time": TIME}


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_llama):
    artifact = build_artifact(tiny_llama, tmp_path_factory.mktemp("tools") / "a", "uncompressed")
    app = create_app(artifact.path, "tiny", limits_for("realtime"))
    with running(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0), app


def _valid(call) -> dict:
    """The call's arguments, checked against its function's enums and required keys."""
    properties = ENUMS[call.function.name]["function"]["parameters"]["properties"]
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == set(properties)
    for key, value in arguments.items():
        assert value in properties[key]["enum"]
    return arguments


def test_named_tool_choice_calls_that_function(served):
    api, _ = served
    reply = api.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=100,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_time"
    _valid(call)


def test_required_calls_one_of_the_tools(served):
    api, _ = served
    for seed in range(3):
        reply = api.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            tools=[WEATHER, TIME],
            tool_choice="required",
            max_tokens=100,
            seed=seed,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert choice.message.tool_calls[0].function.name in ENUMS
        _valid(choice.message.tool_calls[0])


def test_streamed_tool_call_deltas(served):
    api, _ = served
    forced = dict(
        model="tiny",
        messages=MESSAGES,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=100,
        temperature=0,
    )
    chunks = list(api.chat.completions.create(**forced, stream=True))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    first, *rest = deltas
    assert first.index == 0 and first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather" and first.function.arguments == ""
    assert rest and all(d.index == 0 and d.id is None for d in rest)
    arguments = "".join(d.function.arguments for d in rest)
    whole = api.chat.completions.create(**forced)
    assert arguments == whole.choices[0].message.tool_calls[0].function.arguments
    assert [c.choices[0].finish_reason for c in chunks][-1] == "tool_calls"


class Scripted:
    """A request handle that answers with fixed pieces of text, as a model would."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    async def stream(self):
        for index, piece in enumerate(self.pieces, 1):
            last = index == len(self.pieces)
            yield Output(piece, "stop" if last else None, 7, index)

    async def aresult(self) -> Output:
        return Output("".join(self.pieces), "stop", 7, len(self.pieces))

    def cancel(self) -> None:
        pass


@pytest.fixture()
def scripted(served, monkeypatch):
    """Set the next answers' pieces; the prompts the model was given are recorded."""
    api, app = served
    backend = app.state.model.backend
    prompts: list[str] = []
    script: list[str] = []

    def submit(prompt_ids, params):
        prompts.append(backend.tokenizer.decode(prompt_ids))
        assert params.constraint is None  # auto: the model is free
        return Scripted(script)

    monkeypatch.setattr(backend, "submit", submit)
    return api, script, prompts


CALLS = [
    "Let me check.\n<tool_",
    'call>\n{"name": "get_weather", "arguments": {"city": "Oslo", ',
    '"unit": "celsius"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", ',
    '"arguments": {"zone": "CET"}}\n</tool_call>',
]


def test_auto_parses_the_models_calls(scripted):
    api, script, prompts = scripted
    script[:] = CALLS
    reply = api.chat.completions.create(
        model="tiny", messages=MESSAGES, tools=[WEATHER, TIME], tool_choice="auto"
    )
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me check."
    assert [(c.function.name, _valid(c)) for c in message.tool_calls] == [
        ("get_weather", {"city": "Oslo", "unit": "celsius"}),
        ("get_time", {"zone": "CET"}),
    ]
    assert len({c.id for c in message.tool_calls}) == 2
    # The tools went into the prompt through the chat template.
    assert '"name": "get_weather"' in prompts[0] and "<tools>" in prompts[0]
    single = api.chat.completions.create(
        model="tiny", messages=MESSAGES, tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert [c.function.name for c in single.choices[0].message.tool_calls] == ["get_weather"]


def test_auto_streams_content_then_calls(scripted):
    api, script, _ = scripted
    script[:] = CALLS
    chunks = list(
        api.chat.completions.create(
            model="tiny", messages=MESSAGES, tools=[WEATHER, TIME], stream=True
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == "Let me check.\n"  # the partial `<tool_` was held back
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    named = [(d.index, d.function.name) for d in deltas if d.id]
    assert named == [(0, "get_weather"), (1, "get_time")]
    by_index = {i: "".join(d.function.arguments for d in deltas if d.index == i) for i in (0, 1)}
    assert json.loads(by_index[1]) == {"zone": "CET"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_auto_text_without_calls_stays_content(scripted):
    api, script, _ = scripted
    script[:] = ["It is <b>sunny</b> ", "<tool_call>{not json}</tool_call>"]
    reply = api.chat.completions.create(model="tiny", messages=MESSAGES, tools=[WEATHER])
    assert reply.choices[0].finish_reason == "stop"
    assert (
        reply.choices[0].message.content == "It is <b>sunny</b> <tool_call>{not json}</tool_call>"
    )
    assert reply.choices[0].message.tool_calls is None
    chunks = list(
        api.chat.completions.create(model="tiny", messages=MESSAGES, tools=[WEATHER], stream=True)
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == reply.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_messages_are_rendered(scripted):
    api, script, prompts = scripted
    script[:] = ["It is 12 degrees in Oslo."]
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "12 degrees"},
    ]
    reply = api.chat.completions.create(model="tiny", messages=history, tools=[WEATHER])
    assert reply.choices[0].message.content == "It is 12 degrees in Oslo."
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        in prompts[0]
    )
    assert "<|start_header_id|>tool<|end_header_id|>\n\n12 degrees<|eot_id|>" in prompts[0]
    history[1]["tool_calls"][0]["function"]["arguments"] = "not json"
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(model="tiny", messages=history, tools=[WEATHER])
    assert info.value.body["param"] == "messages"


def test_tools_refused_with_openai_400s(served, monkeypatch):
    api, app = served

    def refused(**fields) -> dict:
        with pytest.raises(openai.BadRequestError) as info:
            api.chat.completions.create(model="tiny", messages=MESSAGES, **fields)
        return info.value.body

    loose = _function("f", {"a": {"type": "string"}})
    loose["function"]["parameters"]["required"] = []
    assert refused(tools=[loose])["param"] == "tools"
    assert "required" in refused(tools=[loose])["message"]
    assert (
        refused(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "x"}})[
            "param"
        ]
        == "tool_choice"
    )
    assert refused(tool_choice="required")["param"] == "tool_choice"
    assert refused(parallel_tool_calls=False)["param"] == "parallel_tool_calls"
    assert refused(tools=[{"type": "retrieval"}])["param"] == "tools"
    # A template that writes no tool calls: tools are refused, saying so.
    backend = app.state.model.backend
    monkeypatch.setattr(backend.tokenizer, "chat_template", "{{ messages[0]['content'] }}")
    body = refused(tools=[WEATHER])
    assert body["param"] == "tools" and "no tool support" in body["message"]


def test_gateway_parse_still_refuses_tools():
    body = {"model": "m", "messages": MESSAGES, "tools": [WEATHER]}
    with pytest.raises(BadRequest) as info:
        parse_request(body, ChatRequest, "messages")
    assert info.value.param == "tools"
    assert parse_request(body, ChatRequest, served=("tools",))["tools"] == [WEATHER]


# ---- the families' parsers on hand-written outputs -----------------------------------------


def test_hermes_parser():
    text = (
        'Sure. <tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {"y": "é"}}</tool_call>'
    )
    parsed = parse(HERMES, text)
    assert parsed.content == "Sure."
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("a", {"x": 1}),
        ("b", {"y": "é"}),
    ]
    assert parse(HERMES, text, parallel=False).calls[0].name == "a"
    assert len(parse(HERMES, text, parallel=False).calls) == 1
    # unclosed last call (the answer ran to its end): still a call when its JSON is whole
    assert parse(HERMES, '<tool_call>{"name": "a", "arguments": {}}').calls[0].arguments == "{}"
    for malformed in (
        '<tool_call>{"name": "a", "arguments": {"x": 1}</tool_call>',  # a brace short
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        '<tool_call>{"name": "a", "arguments": [1]}</tool_call>',  # arguments not an object
        '<tool_call>{"name": "a", "arguments": {}}</tool_call> and then text',
        '<tool_call>{"name": "a", "arguments": {"x": 1}}}',  # a brace too many
        '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": </tool_call>',
        "no calls at all",
    ):
        assert parse(HERMES, malformed).calls == ()
        assert parse(HERMES, malformed).content == malformed


def test_llama3_parser():
    parsed = parse(
        LLAMA3,
        '<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}',
    )
    assert parsed.content is None
    assert [(c.name, c.arguments) for c in parsed.calls] == [("a", '{"x": 1}'), ("b", "{}")]
    assert parse(LLAMA3, ' {"name": "a", "parameters": {"x": [1, 2]}}\n').calls[0].name == "a"
    for malformed in (
        'The call is {"name": "a", "parameters": {}}',
        '{"name": "a", "parameters": {}} and more',
        '{"name": "a", "parameters": {}',
        '{"parameters": {}}',
    ):
        assert parse(LLAMA3, malformed).content == malformed and not parse(LLAMA3, malformed).calls


def test_family_detection_and_forced_schema():
    from llmship.models.tiny import LLAMA_CHAT_TEMPLATE

    llama31 = (
        'Respond in the format {"name": function name, "parameters": dictionary of argument name'
    )
    assert family_of(LLAMA_CHAT_TEMPLATE) is HERMES
    assert family_of(llama31) is LLAMA3
    assert family_of({"default": "{{ x }}", "tool_use": "<tool_call>"}) is HERMES
    assert family_of("{{ messages }}") is None and family_of(None) is None
    request = {"tools": [WEATHER, TIME], "tool_choice": "required"}
    use = tool_use(request, llama31)
    assert use.prefill == "" and use.forced == ("get_weather", "get_time")
    schema = use.schema()
    assert [option["properties"]["name"] for option in schema["anyOf"]] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]
    assert schema["anyOf"][1]["properties"]["parameters"] == TIME["function"]["parameters"]
    assert tool_use({"tools": [WEATHER], "tool_choice": "none"}, llama31) is None
    auto = tool_use({"tools": [WEATHER]}, LLAMA_CHAT_TEMPLATE)
    assert auto.forced == () and auto.prefill == ""
    assert auto.content_end("Hi <tool") == 3 and auto.content_end("Hi <b>") == 6
