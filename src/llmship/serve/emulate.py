"""`llmship serve --emulate hf-pytorch`: the artifact under the container's own libraries.

The emulation runs in a separate virtual environment pinned like the AWS Hugging Face
PyTorch inference container (created on first use under ~/.llmship/envs, or given by
LLMSHIP_HF_PYTORCH_PYTHON), with the real toolkit's handler service answering.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from llmship.errors import PackageError
from llmship.package.containers import DEFAULT_TRANSFORMERS
from llmship.serve.server import default_port, resolve_artifact

MODES = ("hf-pytorch",)
TOOLKIT = "2.6.0"
MMS = "1.1.11"


def llmship_home() -> Path:
    return Path(os.environ.get("LLMSHIP_HOME", Path.home() / ".llmship"))


def emulation_python() -> Path:
    """The pinned interpreter: LLMSHIP_HF_PYTORCH_PYTHON, or a venv made on first use."""
    given = os.environ.get("LLMSHIP_HF_PYTORCH_PYTHON")
    if given:
        if not Path(given).is_file():
            raise PackageError(f"LLMSHIP_HF_PYTORCH_PYTHON={given} does not exist")
        return Path(given)
    env = llmship_home() / "envs" / f"hf-pytorch-{DEFAULT_TRANSFORMERS}"
    python = env / "bin" / "python"
    if not (env / ".installed").is_file():
        _create(env, python)
    return python


def _create(env: Path, python: Path) -> None:
    import torch

    torch_spec = f"torch=={torch.__version__.split('+')[0]}"
    print(f"creating the hf-pytorch emulation environment in {env} (once)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(env)],
        [str(python), "-m", "pip", "install", "-q", torch_spec],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"transformers=={DEFAULT_TRANSFORMERS}",
            f"sagemaker-huggingface-inference-toolkit=={TOOLKIT}",
            f"multi-model-server=={MMS}",
        ],
    ]
    for step in steps:
        if subprocess.run(step).returncode != 0:
            raise PackageError(
                f"could not create the emulation environment ({' '.join(step)} "
                "failed); set LLMSHIP_HF_PYTORCH_PYTHON to an interpreter with "
                f"transformers=={DEFAULT_TRANSFORMERS} and the toolkit {TOOLKIT}"
            )
    (env / ".installed").write_text("ok\n")


def emulator_command(model_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    script = Path(__file__).with_name("hf_pytorch_emulator.py")
    return [str(emulation_python()), str(script), str(model_dir), str(port), host]


def serve_emulated(
    source: str | Path, mode: str, host: str = "127.0.0.1", port: int | None = None
) -> None:
    """Run the emulation in the foreground until interrupted."""
    if mode not in MODES:
        raise PackageError(f"--emulate {mode!r}: choose one of {', '.join(MODES)}")
    with tempfile.TemporaryDirectory(prefix="llmship-emulate-") as workdir:
        model_dir = resolve_artifact(source, Path(workdir), DEFAULT_TRANSFORMERS)
        command = emulator_command(model_dir, port or default_port(), host)
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(command, check=False)
