"""Bad input of any shape gets one of llmship's own errors with a message: never another
exception, never a hang (property-based, hypothesis)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmship.config.loader import load_config
from llmship.data.loading import load_rows
from llmship.errors import LlmshipError
from llmship.package.extract import safe_extract
from llmship.serve.handler import Handler, HandlerError

# LLMSHIP_EXAMPLES raises the count for a longer local search.
FAST = settings(
    max_examples=int(os.environ.get("LLMSHIP_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
yaml_text = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda key, value: (
            f"model:\n  name_or_path: m\ndata:\n  source: d.jsonl\ntrain:\n  {key}: {value}\n"
        ),
        st.sampled_from(["epochs", "lora", "batch_size", "learning_rate", "method", "x"]),
        st.text(max_size=40),
    ),
)


@FAST
@given(text=yaml_text, overrides=st.lists(st.text(max_size=30), max_size=3))
def test_any_config_text_loads_or_fails_with_a_config_error(tmp_path, text, overrides):
    path = tmp_path / "llmship.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, overrides, env={})
    except LlmshipError as exc:
        assert str(exc)


@FAST
@given(content=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".csv", ".parquet"]))
def test_any_data_file_loads_or_fails_with_a_data_error(tmp_path, content, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    try:
        load_rows(str(path))
    except LlmshipError as exc:
        assert str(exc)


@FAST
@given(content=st.binary(max_size=600))
def test_any_archive_bytes_extract_or_fail_with_a_package_error(tmp_path, content):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(content)
    out = tmp_path / "out"
    if out.exists():
        shutil.rmtree(out)
    try:
        safe_extract(path, out)
    except LlmshipError as exc:
        assert str(exc)


member_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)


@FAST
@given(names=st.lists(member_names, min_size=1, max_size=4))
def test_archives_with_any_member_names_never_escape(tmp_path, names):
    root = tmp_path / "case"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    path = root / "model.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            archive.addfile(info, io.BytesIO(b"x"))
    try:
        out = safe_extract(path, root / "out")
    except LlmshipError:
        return
    written = [p.resolve() for p in root.rglob("*") if p.is_file()]
    assert all(p == path.resolve() or (root / "out").resolve() in p.parents for p in written)
    assert out == root / "out"


@FAST
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/csv", "", "application/json; charset=utf-8"]
    ),
)
def test_any_request_body_is_answered_or_refused_with_a_status(
    tmp_path_factory, body, content_type
):
    root = tmp_path_factory.getbasetemp() / "handler"
    if not (root / "code" / "inference.py").is_file():
        (root / "code").mkdir(parents=True, exist_ok=True)
        (root / "code" / "inference.py").write_text(
            "def model_fn(d):\n    return None\n"
            "def predict_fn(data, model):\n    return {'echo': data}\n"
        )
    handler = Handler(root)
    handler.load()
    try:
        response, _ = handler.invoke(body, content_type, "application/json")
        assert response
    except HandlerError as exc:
        assert exc.status in (400, 406, 415) and str(exc)
