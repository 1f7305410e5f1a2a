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
