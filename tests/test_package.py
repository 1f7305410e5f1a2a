"""Artifacts: layout, fast tar.gz, validation findings, safe extraction."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from helpers import train_on_memo
from llmship.errors import PackageError
from llmship.package import targz
from llmship.package.build import build_artifact
from llmship.package.extract import safe_extract
from llmship.package.validate import validate_artifact


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_llama):
    return train_on_memo(tmp_path_factory.mktemp("run"), tiny_llama, train={"max_steps": 2})


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_layout_and_both_formats_hold_the_same_files(tmp_path, trained_run):
    flat = build_artifact(trained_run.root, tmp_path / "flat", "uncompressed")
    packed = build_artifact(trained_run.root, tmp_path / "model.tar.gz", "tar.gz")
    names = set(files_of(flat.path))
    assert {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
        "generation_config.json",
        "llmship.json",
        "code/inference.py",
        "code/requirements.txt",
    } <= names
    assert flat.rewritten == ("config.json", "tokenizer_config.json")
    with tarfile.open(packed.path) as archive:
        members = archive.getmembers()
        assert all(not m.name.startswith(("/", "./", "..")) for m in members)
        assert {m.uid for m in members} == {0} and {m.uname for m in members} == {""}
    out = safe_extract(packed.path, tmp_path / "unpacked")
    assert files_of(out) == files_of(flat.path)
    # GNU tar reads the multi-member gzip stream as SageMaker's container does.
    listing = subprocess.run(
        ["tar", "-tzf", str(packed.path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "code/inference.py" in listing
    assert not validate_artifact(packed.path) or all(
        f.severity != "error" for f in validate_artifact(packed.path)
    )


def test_parallel_gzip_blocks_are_one_valid_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(targz, "BLOCK", 64 * 1024)
    source = tmp_path / "src"
    source.mkdir()
    payload = os.urandom(700 * 1024) + b"text " * 50_000
    (source / "weights.bin").write_bytes(payload)
    (source / "sub").mkdir()
    (source / "sub" / "a.txt").write_text("hello")
    out = targz.write_targz(source, tmp_path / "x.tar.gz", workers=3)
    raw = out.read_bytes()
    assert raw.count(b"\x1f\x8b\x08") >= 10  # many gzip members
    unpacked = safe_extract(out, tmp_path / "x")
    assert (unpacked / "weights.bin").read_bytes() == payload
    assert (unpacked / "sub" / "a.txt").read_text() == "hello"


def test_build_refuses_what_cannot_be_served(tmp_path, trained_run):
    adapter = trained_run.output / "adapter"
    with pytest.raises(PackageError, match=r"LoRA adapter.*--merge"):
        build_artifact(adapter, tmp_path / "a.tar.gz")
    with pytest.raises(PackageError, match=r"no config\.json"):
        build_artifact(tmp_path, tmp_path / "b.tar.gz")
    (tmp_path / "exists.tar.gz").write_text("x")
    with pytest.raises(PackageError, match="already exists"):
        build_artifact(trained_run.root, tmp_path / "exists.tar.gz")


def artifact_dir(tmp_path: Path, trained_run, replace: dict | None = None) -> Path:
    out = build_artifact(trained_run.root, tmp_path / "art", "uncompressed").path
    for name, text in (replace or {}).items():
        target = out / name
        if text is None:
            target.unlink()
        else:
            target.write_text(text)
    return out


def messages(path: Path, version: str = "4.51.3") -> list[str]:
    return [str(f) for f in validate_artifact(path, version)]


@pytest.mark.parametrize(
    "code, expected",
    [
        ("def model_fn():\n    pass\n", "model_fn takes 0 parameters"),
        ("def predict_fn(a, b, c, d):\n    pass\n", "predict_fn takes 4 parameters"),
        (
            "def transform_fn(m, b, c, a):\n    pass\ndef input_fn(b, c):\n    pass\n",
            "transform_fn cannot be combined with input_fn",
        ),
        ("def output_fn(p, accept):\n    return p, accept\n", "output_fn returns a tuple"),
        ("def predict_fn(d, m):\n    yield d\n", "predict_fn yields"),
        ("async def model_fn(d):\n    pass\n", "model_fn is async"),
        ("def model_fn(d:\n", "syntax error"),
    ],
)
def test_handler_code_is_checked_statically(tmp_path, trained_run, code, expected):
    # Code that would raise if imported proves nothing is run.
    path = artifact_dir(
        tmp_path, trained_run, {"code/inference.py": "raise SystemExit(9)\n" + code}
    )
    found = messages(path)
    assert any(expected in m and m.startswith("error") for m in found), found


def test_valid_handler_with_context_passes(tmp_path, trained_run):
    code = (
        "def model_fn(model_dir, context=None):\n    return 1\n"
        "def input_fn(body, content_type):\n    return body\n"
        "def predict_fn(data, model, context):\n    return data\n"
        "def output_fn(prediction, accept):\n    return prediction\n"
    )
    path = artifact_dir(tmp_path, trained_run, {"code/inference.py": code})
    assert not [m for m in messages(path) if m.startswith("error")]


def test_layout_requirements_tokenizer_and_weights_findings(tmp_path, trained_run):
    requirements = "peft\nnumpy==2.0.0\nnot a requirement!!\ntransformers==4.56.0\n"
    path = artifact_dir(tmp_path, trained_run, {"code/requirements.txt": requirements})
    found = messages(path)
    assert any("requirements.txt:1: peft is not pinned" in m for m in found)
    assert any(m.startswith("error: code/requirements.txt:3") for m in found)
    assert any("requirements.txt:4: transformers replaces" in m for m in found)
    assert not any("requirements.txt:2" in m for m in found)

    path = artifact_dir(tmp_path / "b", trained_run, {"config.json": None})
    assert any(m.startswith("error: config.json: missing") for m in messages(path))

    path = artifact_dir(tmp_path / "c", trained_run)
    (path / "code" / "inference.py").rename(path / "inference.py")
    assert any("it must be code/inference.py" in m for m in messages(path))

    path = artifact_dir(tmp_path / "d", trained_run)
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}})
    )
    found = messages(path)
    assert any("pickle weights" in m for m in found)
    assert any("lists shard model-00001-of-00002.safetensors, which is absent" in m for m in found)

    path = artifact_dir(tmp_path / "e", trained_run)
    assert any("do not fit" in str(f) for f in validate_artifact(path, memory_bytes=1024))


def test_transformers_5_files_are_errors_for_a_4x_container(tmp_path, trained_run):
    found = messages(trained_run.model)  # the raw transformers 5 save
    assert any("TokenizersBackend does not exist" in m for m in found)
    assert any("rope_parameters" in m for m in found)
    assert not [m for m in messages(trained_run.model, "5.5.3") if m.startswith("error")]


def _tar(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        add(archive)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("traversal", "climbs out"),
        ("absolute", "absolute path"),
        ("symlink", "is a link"),
        ("hardlink", "is a link"),
        ("fifo", "special file"),
        ("device", "special file"),
    ],
)
def test_malicious_archives_are_refused(tmp_path, kind, expected):
    def add(archive):
        if kind == "traversal":
            archive.addfile(*_file("code/../../escape.txt"))
        elif kind == "absolute":
            archive.addfile(*_file("/etc/evil"))
        elif kind in ("symlink", "hardlink"):
            info = tarfile.TarInfo("config.json")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
        else:
            info = tarfile.TarInfo("dev")
            info.type = tarfile.FIFOTYPE if kind == "fifo" else tarfile.CHRTYPE
            archive.addfile(info)

    path = _tar(tmp_path, add)
    with pytest.raises(PackageError, match=expected):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path.parent / "escape.txt").exists()
    with pytest.raises(PackageError, match=expected):
        validate_artifact(path)


def test_decompression_bomb_is_refused(tmp_path):
    class Zeros(io.RawIOBase):
        def __init__(self, size):
            self.left = size

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    size = 96 * 1024 * 1024

    def add(archive):
        info = tarfile.TarInfo("model.safetensors")
        info.size = size
        archive.addfile(info, io.BufferedReader(Zeros(size)))

    path = _tar(tmp_path, add)
    assert path.stat().st_size < size / 200
    with pytest.raises(PackageError, match="decompression bomb"):
        safe_extract(path, tmp_path / "out")


def test_extract_refuses_a_non_empty_destination(tmp_path):
    path = _tar(tmp_path, lambda a: a.addfile(*_file("config.json", b"{}")))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    with pytest.raises(PackageError, match="not empty"):
        safe_extract(path, tmp_path / "out")
    assert (safe_extract(path, tmp_path / "fresh") / "config.json").read_bytes() == b"{}"


def test_sharded_weights_keep_a_consistent_index(tmp_path, tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="200KB")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (sharded / name).write_bytes((tiny_llama / name).read_bytes())
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1
    artifact = build_artifact(sharded, tmp_path / "art", "uncompressed").path
    index = json.loads((artifact / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == shards
    assert not [f for f in validate_artifact(artifact) if f.severity == "error"]
    reloaded = AutoModelForCausalLM.from_pretrained(artifact)
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    (artifact / shards[0]).unlink()
    assert any(
        f"lists shard {shards[0]}, which is absent" in str(f) for f in validate_artifact(artifact)
    )
