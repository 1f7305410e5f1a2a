"""Structured output: answers held to JSON by a grammar, in the engine, through the OpenAI
routes and through the gateway; OpenAI's rules refused with its 400s."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace

import httpx
import jsonschema
import openai
import pytest
import torch

from helpers import SMALL
from llmship.engine.constraints import GrammarError, allowed_rows, json_object, json_schema
from llmship.engine.engine import Engine
from llmship.engine.sampling import SamplingParams
from llmship.gateway.translate import parse_openai, to_converse, to_toolkit
from llmship.models.tiny import create_tiny_model
from llmship.protocol.openai import BadRequest, ChatRequest, parse_request
from llmship.protocol.strict_schema import strict_violation

WORDS = ["red", "green", "blue", "Anna", "meeting", "tomorrow", "yes", "no"]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": WORDS[:3]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
JSON_MESSAGES = [{"role": "user", "content": "Describe Anna as JSON."}]


def _value(rng: random.Random, depth: int) -> dict:
    kinds = ["string", "enum", "integer", "boolean", "nullable", "anyOf"]
    kind = rng.choice(kinds + (["array", "object", "object"] if depth < 2 else []))
    if kind == "string":
        return {"type": "string", "maxLength": rng.randint(1, 8)}
    if kind == "enum":
        return {"type": "string", "enum": rng.sample(WORDS, rng.randint(1, 4))}
    if kind == "integer":
        return {"type": "integer", "minimum": 0, "maximum": rng.choice([9, 99, 999])}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "nullable":
        return {"type": ["string", "null"], "maxLength": 4}
    if kind == "anyOf":
        return {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"enum": ["n/a"]}]}
    if kind == "array":
        items = _value(rng, depth + 1)
        return {"type": "array", "items": items, "maxItems": rng.randint(1, 3)}
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int = 0) -> dict:
    names = rng.sample(WORDS, rng.randint(1, 4))
    properties = {f"{name.lower()}_{depth}": _value(rng, depth) for name in names}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def strict_schemas(count: int, seed: int = 17) -> list[dict]:
    rng = random.Random(seed)
    return [_object(rng) for _ in range(count)]


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    """The random-init tiny Llama and its tokenizer, as the engine takes them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(
        tiny_llama
    )


@pytest.fixture(scope="module")
def engine(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, max_batch=32, max_len=1024)
    yield engine
    engine.close()


# ---- the engine ---------------------------------------------------------------------------


def test_generated_schemas_are_strict_and_varied():
    schemas = strict_schemas(20)
    assert all(strict_violation(schema) is None for schema in schemas)
    text = json.dumps(schemas)
    for kind in ('"array"', '"enum"', '"anyOf"', '"null"', '"boolean"', '"integer"'):
        assert kind in text
    nested = [s for s in schemas if '"object"' in json.dumps(s["properties"])]
    assert len(nested) >= 3


def test_twenty_strict_schemas_validate_batched_with_free_text(engine, tiny):
    _, tokenizer = tiny
    schemas = strict_schemas(20)
    prompts = [tokenizer(f"Answer {i} in JSON:")["input_ids"] for i in range(20)]
    free_prompts = [tokenizer(text)["input_ids"] for text in ("Anna will", "The meeting is", "Hi")]
    free = SamplingParams(max_new_tokens=40)

    def constrained(index: int) -> SamplingParams:  # half greedy, half sampled with a seed
        grammar = json_schema(tokenizer, schemas[index])
        return SamplingParams(
            max_new_tokens=400, constraint=grammar, do_sample=index % 2 == 1, seed=index
        )

    free_alone = [engine.submit(p, free).result().text for p in free_prompts]
    json_alone = [engine.submit(p, constrained(i)).result() for i, p in enumerate(prompts)]
    handles = [engine.submit(p, constrained(i)) for i, p in enumerate(prompts)]
    handles += [engine.submit(p, free) for p in free_prompts]
    outputs = [handle.result() for handle in handles]

    answers = outputs[:20]
    assert [o.finish_reason for o in answers] == ["stop"] * 20
    for output, schema in zip(answers, schemas, strict=True):
        jsonschema.validate(json.loads(output.text), schema)
    assert [o.text for o in answers] == [o.text for o in json_alone]
    # the free-text rows shared the batch and their answers did not change
    assert [o.text for o in outputs[20:]] == free_alone
    assert not any(text.lstrip().startswith("{") for text in free_alone)


def test_streaming_gives_the_same_valid_json(engine, tiny):
    _, tokenizer = tiny
    params = SamplingParams(max_new_tokens=200, constraint=json_schema(tokenizer, PERSON))
    prompt = tokenizer("Anna as JSON:")["input_ids"]
    whole = engine.submit(prompt, params).result()

    async def pieces() -> list:
        return [output async for output in engine.submit(prompt, params).stream()]

    streamed = asyncio.run(pieces())
    assert len(streamed) > 3
    assert "".join(o.text for o in streamed) == whole.text
    assert streamed[-1].finish_reason == whole.finish_reason == "stop"
    jsonschema.validate(json.loads(whole.text), PERSON)


def test_json_object_is_one_object_whenever_it_stops(engine, tiny):
    _, tokenizer = tiny
    prompt = tokenizer("Reply in JSON:")["input_ids"]
    grammar = json_object(tokenizer)
    outputs = [
        engine.submit(
            prompt,
            SamplingParams(max_new_tokens=120, do_sample=True, seed=seed, constraint=grammar),
        ).result()
        for seed in range(8)
    ]
    assert all(output.text.startswith("{") for output in outputs)
    stopped = [output for output in outputs if output.finish_reason == "stop"]
    assert stopped
    assert all(isinstance(json.loads(output.text), dict) for output in stopped)


def test_an_unsupported_keyword_is_named(tiny):
    _, tokenizer = tiny
    with pytest.raises(GrammarError, match="uniqueItems"):
        json_schema(tokenizer, {"type": "array", "uniqueItems": True})


# ---- the tokenizer's added tokens ----------------------------------------------------------


@pytest.fixture(scope="module")
def padded_tokenizer(tmp_path_factory):
    """The tiny tokenizer filled up to its vocabulary with added word tokens (" w0", ...),
    beside its special tokens."""
    from transformers import AutoTokenizer

    spec = replace(SMALL, vocab_size=1100, fill_vocab=True)
    path = create_tiny_model(tmp_path_factory.mktemp("models") / "padded", "llama", spec)
    tokenizer = AutoTokenizer.from_pretrained(path)
    added = [i for i, t in tokenizer.added_tokens_decoder.items() if not t.special]
    assert len(added) > 100
    return tokenizer, added


def _walk(tokenizer, schema: dict, prefer: set[int], seed: int) -> tuple[list[int], list]:
    """Tokens a grammar allows, chosen at random (from `prefer` whenever one is allowed),
    with the mask at every step."""
    rng = random.Random(seed)
    grammar = json_schema(tokenizer, schema)()
    tokens, masks = [], []
    while not grammar.is_finished():
        mask = grammar.allowed()
        masks.append(mask)
        ids = mask.nonzero().flatten().tolist()
        if tokenizer.eos_token_id in ids:
            break
        preferred = [i for i in ids if i in prefer]
        token = rng.choice(preferred or ids)
        grammar.accept(token)
        tokens.append(token)
    return tokens, masks


def test_masks_never_allow_special_tokens_mid_json(padded_tokenizer):
    """No special token (EOS included: an object ends at its closing brace) is ever
    allowed, while the added word tokens are, inside strings."""
    tokenizer, added = padded_tokenizer
    specials = [i for i, t in tokenizer.added_tokens_decoder.items() if t.special]
    assert tokenizer.eos_token_id in specials
    schemas = [PERSON, {"type": "object"}, *strict_schemas(5, seed=3)]
    for seed, schema in enumerate(schemas):
        _, masks = _walk(tokenizer, schema, set(), seed)
        assert len(masks) > 3
        assert not any(mask[specials].any() for mask in masks)
    _, masks = _walk(tokenizer, PERSON, set(), 0)
    assert any(mask[added].all() for mask in masks)  # inside the name: any word goes


def test_added_tokens_decode_to_what_the_grammar_accepted(padded_tokenizer):
    """Answers written with the added word tokens wherever the grammar allows them
    decode to JSON that validates: the grammar read their text as the tokenizer writes it."""
    tokenizer, added = padded_tokenizer
    words = [tokenizer.decode([i]) for i in added[:6]]
    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "string", "maxLength": 20},
            "pick": {"enum": ["".join(words[:2]), "".join(words[2:4])]},
        },
        "required": ["free", "pick"],
        "additionalProperties": False,
    }
    for seed in range(4):
        tokens, _ = _walk(tokenizer, schema, set(added), seed)
        used = [token for token in tokens if token in set(added)]
        assert len(used) >= 3  # the grammar let them into the free string and the enum
        answer = json.loads(tokenizer.decode(tokens))
        jsonschema.validate(answer, schema)
        assert any(word in answer["free"] for word in words) or answer["free"] == ""


def test_padded_logits_are_never_allowed(tiny):
    _, tokenizer = tiny
    grammar = json_object(tokenizer)()
    width = len(tokenizer) + 40  # a model whose embedding is padded past its tokenizer
    masks = allowed_rows([None, grammar], width, torch.device("cpu"))
    assert masks is not None and masks.shape == (2, width)
    assert masks[0].all()
    assert masks[1, : len(tokenizer)].any() and not masks[1, len(tokenizer) :].any()
    assert allowed_rows([None, None], width, torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_on_the_gpu_equal_those_on_the_cpu(tiny):
    _, tokenizer = tiny
    grammars = [json_schema(tokenizer, PERSON)() for _ in range(3)]
    grammars[1].accept(int(grammars[1].allowed().nonzero()[0]))  # a state of its own
    rows = [None, *grammars]
    width = len(tokenizer) + 8
    on_cpu = allowed_rows(rows, width, torch.device("cpu"))
    on_gpu = allowed_rows(rows, width, torch.device("cuda"))
    assert on_cpu is not None and on_gpu is not None and on_gpu.is_cuda
    assert torch.equal(on_gpu.cpu(), on_cpu)
    assert not torch.equal(on_cpu[1], on_cpu[2])


# ---- OpenAI's rules ------------------------------------------------------------------------


def _chat(response_format: dict, **fields) -> dict:
    return {
        "model": "tiny",
        "messages": JSON_MESSAGES,
        "response_format": response_format,
        **fields,
    }


def _schema_format(schema: dict, strict: bool = True, **spec) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": strict, **spec},
    }


def _refusal(body: dict) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        parse_request(body, ChatRequest, "messages")
    return info.value


def test_openai_rules_for_response_format():
    loose = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    nameless = {"type": "json_schema", "json_schema": {"schema": PERSON}}
    assert "json_schema.name" in str(_refusal(_chat(nameless)))
    missing = _refusal(_chat(_schema_format({**loose, "additionalProperties": False})))
    assert missing.param == "response_format"
    assert "'required' is required" in str(missing) and "Missing 'a'" in str(missing)
    open_ended = _refusal(_chat(_schema_format({**loose, "required": ["a", "b"]})))
    assert "'additionalProperties' is required to be supplied and to be false" in str(open_ended)
    nested = {**PERSON, "properties": {**PERSON["properties"], "pet": loose}}
    nested["required"] = [*PERSON["required"], "pet"]
    assert "context=('properties', 'pet')" in str(_refusal(_chat(_schema_format(nested))))
    unique = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    tagged = {**PERSON, "properties": {**PERSON["properties"], "tags": unique}}
    assert "'uniqueItems' is not permitted" in str(_refusal(_chat(_schema_format(tagged))))
    array_root = _refusal(_chat(_schema_format({"type": "array", "items": {"type": "string"}})))
    assert 'type: "object"' in str(array_root)
    # not strict: optional properties are fine (the answer is still held to the schema)
    parse_request(_chat(_schema_format(loose, strict=False)), ChatRequest, "messages")
    no_word = _refusal(
        {**_chat({"type": "json_object"}), "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert no_word.param == "messages"
    assert str(no_word) == (
        "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'."
    )
    parse_request(_chat({"type": "json_object"}), ChatRequest, "messages")
    assert _refusal(_chat({"type": "json_object"}, stop=["}"])).param == "stop"
    assert _refusal(_chat({"type": "yaml"})).param == "response_format"


def test_gateway_passes_response_format_only_to_an_openai_server():
    body = _chat(_schema_format(PERSON))
    ask = parse_openai(body, chat=True, max_tokens_cap=100)
    assert ask.response_format == body["response_format"]
    for translate in (to_toolkit, to_converse):
        with pytest.raises(BadRequest) as info:
            translate(ask)
        assert info.value.param == "response_format"
    plain = parse_openai({**body, "response_format": {"type": "text"}}, True, 100)
    assert plain.response_format is None
    assert "response_format" not in json.dumps(to_toolkit(plain))


# ---- the server and the gateway ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from llmship.serve.app import create_app
    from llmship.serve.background import running
    from llmship.serve.limits import limits_for
    from llmship.serve.server import resolve_artifact

    model_dir = resolve_artifact(trained[1], tmp_path_factory.mktemp("unpacked"))
    with running(create_app(model_dir, "tiny", limits_for("realtime"))) as url:
        yield url


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_server_answers_validate_streamed_or_not(server):
    api = _client(server)
    asked = {
        "model": "tiny",
        "messages": JSON_MESSAGES,
        "max_tokens": 200,
        "temperature": 0,
        "response_format": _schema_format(PERSON),
    }
    whole = api.chat.completions.create(**asked)
    assert whole.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(whole.choices[0].message.content), PERSON)
    chunks = list(api.chat.completions.create(**asked, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    completion = api.completions.create(
        model="tiny",
        prompt="Anna, as JSON:",
        max_tokens=200,
        temperature=0,
        extra_body={"response_format": _schema_format(PERSON)},
    )
    assert completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(completion.choices[0].text), PERSON)


def test_server_refuses_with_openai_400s(server):
    api = _client(server)
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Describe Anna."}],
            response_format={"type": "json_object"},
        )
    assert info.value.body["param"] == "messages" and "the word 'json'" in info.value.message
    # past OpenAI's rules, a keyword the grammar cannot hold the answer to is named
    unique = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    refused = httpx.post(
        f"{server}/v1/chat/completions",
        json=_chat(_schema_format(unique, strict=False)),
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "response_format" and "uniqueItems" in error["message"]


def test_gateway_local_target_returns_valid_json(server, tmp_path):
    from llmship.config.gateway import GatewayConfig
    from llmship.gateway.app import create_gateway_app
    from llmship.gateway.keys import new_key
    from llmship.gateway.sqlite_store import SqliteStore
    from llmship.serve.background import running

    config = GatewayConfig.model_validate({"routes": {"loc": {"targets": [{"local": server}]}}})
    store = SqliteStore(tmp_path / "g.db")
    key, record = new_key("t", ["*"], requests_per_minute=100, tokens_per_day=10**6)
    store.put_key(record)
    with running(create_gateway_app(config, store)) as gateway:
        api = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
        reply = api.chat.completions.create(
            model="loc",
            messages=JSON_MESSAGES,
            max_tokens=200,
            temperature=0,
            response_format=_schema_format(PERSON),
        )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), PERSON)
