"""Check an artifact before a 10-minute deploy finds the problem for you.

Reads a directory or a model.tar.gz without extracting or importing anything: user code
is parsed, never run. Each finding has a severity; errors make `llmship validate` exit
non-zero.
"""

from __future__ import annotations

import ast
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmship.errors import PackageError
from llmship.package.containers import target_major
from llmship.package.extract import check_members

Severity = Literal["error", "warning", "info"]

# name -> (parameters without context, with the optional trailing context)
HANDLERS = {
    "model_fn": (1, 2),
    "input_fn": (2, 3),
    "predict_fn": (2, 3),
    "output_fn": (2, 3),
    "transform_fn": (4, 5),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


class _Reader:
    """Names, sizes and text of an artifact's files, from a directory or a tar.gz."""

    def __init__(self, path: Path):
        self.path = path
        self.sizes: dict[str, int] = {}
        self._archive: tarfile.TarFile | None = None
        if path.is_dir():
            for file in path.rglob("*"):
                if file.is_symlink():
                    raise PackageError(
                        f"{path}: {file.relative_to(path)} is a symlink; store the file itself"
                    )
                if file.is_file():
                    self.sizes[file.relative_to(path).as_posix()] = file.stat().st_size
        elif path.is_file():
            try:
                self._archive = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed by close())
                members = check_members(self._archive, path.stat().st_size, path.name)
            except tarfile.TarError as exc:
                raise PackageError(f"cannot read {path} as a tar.gz archive: {exc}") from None
            for member in members:
                if member.isfile():
                    self.sizes[_clean(member.name)] = member.size
        else:
            raise PackageError(f"artifact {path} not found")

    def text(self, name: str) -> str:
        if self._archive is None:
            return (self.path / name).read_text(encoding="utf-8")
        for member in self._archive.getmembers():
            if _clean(member.name) == name:
                return self._archive.extractfile(member).read().decode("utf-8")
        raise KeyError(name)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()


def _clean(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def validate_artifact(
    path: str | Path,
    transformers_version: str | None = None,
    memory_bytes: int | None = None,
) -> list[Finding]:
    """Every finding for the artifact at `path`, errors first."""
    reader = _Reader(Path(path))
    try:
        findings: list[Finding] = []
        for check in CHECKS:
            findings += check(reader, target_major(transformers_version))
        findings += _check_size(reader, memory_bytes)
    finally:
        reader.close()
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def _check_config(reader: _Reader, major: int) -> list[Finding]:
    if "config.json" not in reader.sizes:
        return [
            Finding(
                "error",
                "config.json",
                "missing at the archive root; the model files "
                "(config, tokenizer, weights) go at the root, code/ beside them",
            )
        ]
    try:
        config = json.loads(reader.text("config.json"))
    except json.JSONDecodeError as exc:
        return [Finding("error", "config.json", f"not valid JSON ({exc.msg})")]
    if major == 4 and "rope_parameters" in config and "rope_theta" not in config:
        return [
            Finding(
                "error",
                "config.json",
                "rope settings are in transformers 5's "
                "rope_parameters, which transformers 4.x ignores (the model would run with "
                "the default rope); package with llmship for this container",
            )
        ]
    return []


def _check_tokenizer(reader: _Reader, major: int) -> list[Finding]:
    findings = []
    if not any(name in reader.sizes for name in TOKENIZER_FILES):
        findings.append(
            Finding(
                "error",
                "tokenizer",
                "no tokenizer files (tokenizer.json or "
                "tokenizer.model) at the root; save the tokenizer with the model",
            )
        )
    if "tokenizer_config.json" in reader.sizes:
        config = json.loads(reader.text("tokenizer_config.json"))
        if major == 4 and config.get("tokenizer_class") == "TokenizersBackend":
            findings.append(
                Finding(
                    "error",
                    "tokenizer_config.json",
                    "tokenizer_class "
                    "TokenizersBackend does not exist in transformers 4.x; "
                    "package with llmship for this container",
                )
            )
    return findings


def _check_weights(reader: _Reader, major: int) -> list[Finding]:
    names = [n for n in reader.sizes if "/" not in n]
    safetensors = [n for n in names if n.endswith(".safetensors")]
    binaries = [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
    findings = []
    if binaries:
        findings.append(
            Finding(
                "warning",
                binaries[0],
                "pickle weights load slower and can run "
                "code; prefer safetensors (TGI requires them)",
            )
        )
    if not safetensors and not binaries:
        findings.append(Finding("error", "weights", "no weights (.safetensors) at the root"))
    for index_name in [n for n in names if n.endswith(".safetensors.index.json")]:
        weight_map = json.loads(reader.text(index_name)).get("weight_map", {})
        listed = set(weight_map.values())
        for missing in sorted(listed - set(names)):
            findings.append(Finding("error", index_name, f"lists shard {missing}, which is absent"))
        for extra in sorted(set(safetensors) - listed):
            findings.append(Finding("warning", extra, f"not listed in {index_name}"))
    return findings


def _check_code(reader: _Reader, major: int) -> list[Finding]:
    if "code/inference.py" not in reader.sizes:
        stray = [n for n in reader.sizes if n.endswith("inference.py")]
        where = f" (found {stray[0]}; it must be code/inference.py)" if stray else ""
        return [
            Finding(
                "warning",
                "code/inference.py",
                f"absent: the container will build a default pipeline{where}",
            )
        ]
    findings = _check_handlers(reader.text("code/inference.py"))
    if "code/requirements.txt" in reader.sizes:
        findings += _check_requirements(reader.text("code/requirements.txt"))
    return findings


def _check_handlers(source: str) -> list[Finding]:
    where = "code/inference.py"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [Finding("error", f"{where}:{exc.lineno}", f"syntax error: {exc.msg}")]
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    findings = []
    for name, allowed in HANDLERS.items():
        node = functions.get(name)
        if node is None:
            continue
        count = len(node.args.posonlyargs) + len(node.args.args)
        if count not in allowed:
            findings.append(
                Finding(
                    "error",
                    f"{where}:{node.lineno}",
                    f"{name} takes {count} "
                    f"parameters; the toolkit calls it with {allowed[0]} (or "
                    f"{allowed[1]} with a trailing context)",
                )
            )
        if isinstance(node, ast.AsyncFunctionDef):
            findings.append(
                Finding(
                    "error",
                    f"{where}:{node.lineno}",
                    f"{name} is async; the toolkits call handlers synchronously",
                )
            )
    if "transform_fn" in functions:
        mixed = [n for n in ("input_fn", "predict_fn", "output_fn") if n in functions]
        if mixed:
            findings.append(
                Finding(
                    "error",
                    where,
                    f"transform_fn cannot be combined with "
                    f"{', '.join(mixed)}; the toolkit refuses to load",
                )
            )
    output = functions.get("output_fn")
    if output is not None and any(
        isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) for n in ast.walk(output)
    ):
        findings.append(
            Finding(
                "error",
                f"{where}:{output.lineno}",
                "output_fn returns a tuple; "
                "the Hugging Face toolkit sends it as a JSON array, not (body, "
                "content_type): return the body only",
            )
        )
    for name in ("predict_fn", "transform_fn"):
        node = functions.get(name)
        if node is not None and any(
            isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(node)
        ):
            findings.append(
                Finding(
                    "error",
                    f"{where}:{node.lineno}",
                    f"{name} yields (streams); "
                    "the Hugging Face PyTorch container has no response "
                    "streaming",
                )
            )
    if not any(name in functions for name in HANDLERS):
        findings.append(
            Finding(
                "warning",
                where,
                "defines none of model_fn, input_fn, predict_fn, output_fn, transform_fn",
            )
        )
    return findings


def _check_requirements(text: str) -> list[Finding]:
    from packaging.requirements import InvalidRequirement, Requirement

    findings = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"code/requirements.txt:{number}"
        if line.startswith("-"):
            findings.append(
                Finding(
                    "warning",
                    where,
                    f"pip option {line!r}: make sure the endpoint's network allows it",
                )
            )
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            findings.append(Finding("error", where, f"not a requirement: {exc}"))
            continue
        if requirement.url:
            findings.append(Finding("warning", where, "installs from a URL at container start"))
        elif not any(spec.operator == "==" for spec in requirement.specifier):
            findings.append(
                Finding(
                    "warning",
                    where,
                    f"{requirement.name} is not pinned (==); "
                    "the container may install a different version each start",
                )
            )
        if requirement.name.lower() in ("torch", "transformers"):
            findings.append(
                Finding(
                    "warning",
                    where,
                    f"{requirement.name} replaces the container's own pinned version",
                )
            )
    return findings


def _check_size(reader: _Reader, memory_bytes: int | None) -> list[Finding]:
    total = sum(size for name, size in reader.sizes.items() if name.endswith(".safetensors"))
    findings = [Finding("info", "weights", f"{total / 1024**2:.1f} MiB of safetensors weights")]
    if memory_bytes is not None and total > 0.9 * memory_bytes:
        findings.append(
            Finding(
                "error",
                "weights",
                f"{total / 1024**3:.2f} GiB of weights do not "
                f"fit in {memory_bytes / 1024**3:.1f} GiB with room to run; choose "
                "a larger instance",
            )
        )
    return findings


CHECKS: list[Callable[[_Reader, int], list[Finding]]] = [
    _check_config,
    _check_tokenizer,
    _check_weights,
    _check_code,
]
