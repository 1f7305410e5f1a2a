"""The Lambda function zip: the gateway's modules and the libraries they import, no more.

What goes in:
- llmship's own modules the gateway imports (MODULES; no torch, transformers or engine);
- the installed distributions of ROOTS and their required dependencies, minus what the
  Lambda Python runtime already has (boto3 and its dependencies) and what the gateway
  never calls (huggingface_hub: tokenizers needs it only to download);
- gateway.json (the exposed route's config), each route's tokenizer.json, and run.sh
  (uvicorn on the same app, started by the Lambda Web Adapter for streaming).

The libraries are copied from this environment when it matches the Lambda runtime
(Linux, the same CPU architecture and Python version); otherwise pip fetches the same
versions as manylinux wheels for the runtime's platform. The result is deterministic
(fixed timestamps, sorted entries), so an unchanged gateway gives the same zip hash.
"""

from __future__ import annotations

import io
import json
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from llmship.config.gateway import GatewayConfig
from llmship.errors import DeployError

ROOTS = ("fastapi", "mangum", "tokenizers", "uvicorn", "httpx")
IN_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
NOT_NEEDED = {"huggingface-hub"}
MODULES = (
    "llmship/__init__.py",
    "llmship/errors.py",
    "llmship/config/section.py",
    "llmship/config/gateway.py",
    "llmship/aws/__init__.py",
    "llmship/aws/errors.py",
    "llmship/aws/session.py",
    "llmship/protocol/*.py",
    "llmship/gateway/*.py",
    "llmship/gateway/playground.html",
)
RUN_SH = """#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): the same
# app as the buffered handler, served by uvicorn so answers can stream.
export PYTHONPATH="$LAMBDA_TASK_ROOT:$PYTHONPATH"
exec python -m uvicorn --factory llmship.gateway.lambda_handler:app \\
  --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --log-level warning
"""
STAMP = (2020, 1, 1, 0, 0, 0)
MACHINES = {"x86_64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> dict[str, str]:
    """name -> installed version of every distribution the zip needs."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(ROOTS)
    while todo:
        name = _norm(todo.pop())
        if name in found or name in IN_RUNTIME or name in NOT_NEEDED:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise DeployError(
                f"the gateway needs {name} to build its Lambda zip: pip install {name}"
            ) from None
        found[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return found


def _same_platform(runtime: str, architecture: str) -> bool:
    version = runtime.removeprefix("python")
    return (
        sys.platform == "linux"
        and platform.machine().lower() in MACHINES[architecture]
        and f"{sys.version_info.major}.{sys.version_info.minor}" == version
    )


def _installed_files(names: dict[str, str]) -> dict[str, Path]:
    """archive path -> file, for the installed distributions (their own files only)."""
    files: dict[str, Path] = {}
    for name in names:
        dist = distribution(name)
        for entry in dist.files or []:
            path = str(entry)
            if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
                continue
            if ".dist-info/" in path and not path.endswith(
                ("METADATA", "LICENSE", "top_level.txt")
            ):
                continue
            files[path] = Path(dist.locate_file(entry))
    return files


def _pip_files(
    names: dict[str, str], runtime: str, architecture: str, into: Path
) -> dict[str, Path]:
    machine = MACHINES[architecture][0]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(into),
        "--only-binary=:all:", "--implementation", "cp",
        "--python-version", runtime.removeprefix("python"),
        "--platform", f"manylinux2014_{machine}",
        *[f"{name}=={version}" for name, version in sorted(names.items())],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(
            f"pip could not fetch the gateway's libraries for {runtime} on {architecture}: "
            f"{done.stderr.strip()[-1500:]}"
        )
    return {
        str(path.relative_to(into)): path
        for path in into.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def build_zip(
    config: GatewayConfig,
    *,
    base_dir: Path,
    runtime: str = "python3.11",
    architecture: str = "x86_64",
) -> bytes:
    """The function zip for `config` (tokenizer paths are rewritten to the copies inside)."""
    package = Path(__file__).resolve().parents[1]
    entries: dict[str, bytes | Path] = {}
    for pattern in MODULES:
        for path in sorted(package.parent.glob(pattern)):
            entries[str(path.relative_to(package.parent))] = path
    routes = {}
    for name, route in config.routes.items():
        tokenizer = None
        if route.tokenizer:
            from llmship.gateway.tokens import tokenizer_file

            source = Path(route.tokenizer)
            source = source if source.is_absolute() else base_dir / source
            tokenizer = f"tokenizers/{name}.json"
            entries[tokenizer] = tokenizer_file(source)
        routes[name] = route.model_copy(update={"tokenizer": tokenizer})
    packed = config.model_copy(update={"routes": routes, "store": "dynamodb"})
    entries["gateway.json"] = json.dumps(packed.model_dump(mode="json"), indent=1).encode()
    entries["run.sh"] = RUN_SH.encode()
    names = distributions()
    with tempfile.TemporaryDirectory() as scratch:
        if _same_platform(runtime, architecture):
            libraries = _installed_files(names)
        else:
            libraries = _pip_files(names, runtime, architecture, Path(scratch))
        entries.update(libraries)
        return _zip(entries)


def _zip(entries: dict[str, bytes | Path]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            value = entries[name]
            data = value if isinstance(value, bytes) else value.read_bytes()
            executable = name == "run.sh" or (
                isinstance(value, Path) and value.stat().st_mode & 0o111
            )
            info.external_attr = (0o755 if executable else 0o644) << 16
            archive.writestr(info, data)
    return out.getvalue()
