"""Property-based bad input (hypothesis): the config loader, the data loaders, the payload
parsers and the archive extractor answer anything with a value or our own error type
carrying a message: never another exception, never a hang (each example has a deadline).

LLMSHIP_EXAMPLES raises the example count for a longer local search.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import shutil
import tarfile
from datetime import timedelta

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmship.config.loader import load_config
from llmship.data.loading import load_rows
from llmship.errors import LlmshipError, PackageError
from llmship.package.extract import safe_extract
from llmship.serve import openai_api
from llmship.serve.handler import Handler, HandlerError

EXAMPLES = int(os.environ.get("LLMSHIP_EXAMPLES", "50"))
FAST = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # a hang is a failure, not a slow test
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = [
    "project.name", "model.name_or_path", "model.max_length", "model.hf_token", "data.source",
    "data.format", "train.epochs", "train.method", "train.lora.r", "train.learning_rate",
    "deploy.target", "deploy.kind", "deploy.ttl", "deploy.serverless.memory_mb",
    "deploy.autoscaling.max", "deploy.environment", "aws.region", "aws.role_arn", "package.format",
    "serve.port", "x", "train", "deploy.vpc.subnets",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def tree_with(assignments: list[tuple[str, object]]) -> dict:
    tree: dict = {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}}
    for path, value in assignments:
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return tree


@FAST
@given(
    assignments=st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=4),
    overrides=st.lists(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(max_size=12)),
        max_size=3,
    ),
)
def test_random_key_paths_and_values_load_or_give_a_config_error(tmp_path, assignments, overrides):
    path = tmp_path / "llmship.yaml"
    try:
        path.write_text(yaml.safe_dump(tree_with(assignments), allow_unicode=True))
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not writable as YAML: nothing to load
    try:
        load_config(path, overrides, env={"HOME": str(tmp_path)})
    except LlmshipError as exc:
        assert str(exc)


@FAST
@given(text=st.text(max_size=400), env=st.dictionaries(st.text(max_size=5), st.text(max_size=5)))
def test_any_yaml_text_loads_or_gives_a_config_error(tmp_path, text, env):
    path = tmp_path / "llmship.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_config(path, [], env=env)
    except LlmshipError as exc:
        assert str(exc)


json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
)
jsonl_lines = st.lists(
    st.one_of(
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.text(max_size=40),
        st.just(""),
    ),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
csv_bytes = st.lists(
    st.lists(st.text(alphabet=st.characters(), max_size=10), max_size=4), max_size=5
).map(lambda rows: "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass"))


@FAST
@given(
    content=st.one_of(jsonl_lines, st.binary(max_size=300)),
    suffix=st.sampled_from([".jsonl", ".json"]),
)
def test_any_jsonl_loads_or_gives_a_data_error(tmp_path, content, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    try:
        load_rows(str(path))
    except LlmshipError as exc:
        assert str(exc)


@FAST
@given(content=st.one_of(csv_bytes, st.binary(max_size=300)))
def test_any_csv_loads_or_gives_a_data_error(tmp_path, content):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    try:
        load_rows(str(path))
    except LlmshipError as exc:
        assert str(exc)


# payloads --------------------------------------------------------------------------------

bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"inputs": json_values}, optional={"parameters": json_values}).map(
        lambda v: json.dumps(v).encode()
    ),
)
content_types = st.one_of(
    st.sampled_from(
        ["application/json", "text/csv", "", "application/json; charset=utf-8", "text/plain"]
    ),
    st.text(max_size=30),
)


@FAST
@given(body=bodies, content_type=content_types, accept=content_types)
def test_the_sagemaker_handler_answers_any_body_or_refuses_with_a_status(
    tmp_path_factory, body, content_type, accept
):
    root = tmp_path_factory.getbasetemp() / "properties-handler"
    if not (root / "code" / "inference.py").is_file():
        (root / "code").mkdir(parents=True, exist_ok=True)
        (root / "code" / "inference.py").write_text(
            "def model_fn(d):\n    return None\n"
            "def predict_fn(data, model):\n    return {'echo': data}\n"
        )
    handler = Handler(root)
    handler.load()
    try:
        response, answered_type = handler.invoke(body, content_type, accept)
        assert isinstance(response, bytes) and answered_type
    except HandlerError as exc:
        assert exc.status in (400, 406, 413, 415) and str(exc)


class FakeTokenizer:
    chat_template = "{{ messages }}"

    def __call__(self, text, add_special_tokens=True):
        if not isinstance(text, str):
            raise TypeError("text input must be of type str")
        return {"input_ids": list(text.encode())[:50]}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)


class FakeServed:
    tokenizer = FakeTokenizer()

    class loaded:
        class defaults:
            max_new_tokens = 16


class FakeRequest:
    def __init__(self, body: bytes):
        self._body = body

    async def body(self) -> bytes:
        return self._body


openai_bodies = st.one_of(
    bodies,
    st.dictionaries(
        st.sampled_from(
            [
                "messages",
                "prompt",
                "max_tokens",
                "temperature",
                "top_p",
                "stop",
                "seed",
                "n",
                "stream",
                "logprobs",
                "presence_penalty",
                "max_completion_tokens",
                "ignore_eos",
            ]
        ),
        json_values,
        max_size=6,
    ).map(lambda v: json.dumps(v).encode()),
)


@FAST
@given(body=openai_bodies, chat=st.booleans())
def test_openai_request_parsing_answers_or_gives_an_openai_error(body, chat):
    allowed, required = (openai_api.CHAT, "messages") if chat else (openai_api.COMPLETION, "prompt")
    served = FakeServed()
    try:
        if inspect.iscoroutinefunction(openai_api._body):  # takes the request
            parsed = asyncio.run(openai_api._body(FakeRequest(body), allowed, required))
        else:  # takes the raw body
            parsed = openai_api._body(body, allowed, required)
        if chat:
            ids = openai_api._chat_prompt(served, parsed["messages"])
            assert isinstance(ids, list)
        limit = parsed.get("max_completion_tokens", parsed.get("max_tokens"))
        openai_api._sampling(served, parsed, limit)
    except openai_api.OpenAIError as exc:
        assert 400 <= exc.status < 600 and str(exc)


# archives --------------------------------------------------------------------------------

member_kinds = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
     tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE]
)  # fmt: skip
names = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(
        ["../x", "/etc/passwd", "a/../../b", "./ok.txt", "code/inference.py", "\\\\srv\\x", "."]
    ),
)
members = st.lists(
    st.tuples(names, member_kinds, st.integers(0, 2048), st.text(max_size=12)),
    min_size=1,
    max_size=5,
)


@FAST
@given(entries=members)
def test_any_tar_members_extract_safely_or_give_a_package_error(tmp_path, entries):
    root = tmp_path / "case"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    path = root / "model.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, size, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            data = b"x" * size if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else b""
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    try:
        safe_extract(path, root / "out")
    except LlmshipError as exc:
        assert isinstance(exc, PackageError) and str(exc)
        return
    for found in (root / "out").rglob("*"):
        assert not found.is_symlink() and (found.is_file() or found.is_dir())
        assert (root / "out").resolve() in found.resolve().parents


def test_a_decompression_bomb_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    size = 100 * 1024 * 1024  # zeros compress about 1000x
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("model.safetensors")
        info.size = size

        class Zeros(io.RawIOBase):
            left = size

            def readable(self):
                return True

            def readinto(self, buffer):
                n = min(len(buffer), self.left)
                buffer[:n] = bytes(n)
                self.left -= n
                return n

        archive.addfile(info, io.BufferedReader(Zeros()))
    try:
        safe_extract(path, tmp_path / "out")
    except PackageError as exc:
        assert "bomb" in str(exc)
    else:
        raise AssertionError("a 100 MB file of zeros in a small archive was extracted")
    assert not (tmp_path / "out").exists()
