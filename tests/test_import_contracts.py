"""The import contracts in pyproject.toml ([tool.importlinter]) hold.

`make lint` runs lint-imports too; this test keeps the contracts enforced where only
the test suite runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(
    not LINT_IMPORTS.is_file(),
    reason=f"import-linter is not installed ({LINT_IMPORTS} missing): pip install -e '.[dev]'",
)
def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_contracts_the_design_names_are_there() -> None:
    """Deleting a contract would keep the check green: the ones the layout rests on stay."""
    import tomllib

    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {c["id"]: c for c in settings["contracts"]}
    assert contracts["no-package-cycles"]["type"] == "acyclic_siblings"
    assert contracts["no-package-cycles"]["ancestors"] == ["llmship"]
    assert contracts["no-module-cycles"]["ancestors"] == ["llmship.*"]
    assert not any(c.get("ignore_imports") for c in contracts.values())
    layers = [layer.split(" | ") for layer in contracts["layers"]["layers"]]
    assert layers[0] == ["cli"] and layers[-1] == ["errors"]
    for fenced in ("llmship.aws", "llmship.gateway", "llmship.protocol"):
        assert fenced in contracts["lambda-torch-free"]["source_modules"]
    assert {"torch", "transformers", "llmship.models", "llmship.engine"} <= set(
        contracts["lambda-torch-free"]["forbidden_modules"]
    )
    assert set(contracts["protocol-no-aws"]["forbidden_modules"]) >= {"boto3", "llmship.aws"}
    assert contracts["serve-no-aws"]["forbidden_modules"][0] == "llmship.aws"
    assert contracts["engine-no-serve"]["forbidden_modules"] == ["llmship.serve"]
    assert contracts["stages-no-cli"]["forbidden_modules"] == ["llmship.cli"]
    packages = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "src" / "llmship").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    layered = {name for layer in layers for name in layer}
    assert packages - {"cli"} <= set(
        name.removeprefix("llmship.") for name in contracts["stages-no-cli"]["source_modules"]
    )
    assert packages == layered, "every package and top-level module sits in a layer"
