"""The public API is what __all__ says, and importing llmship stays light."""

from __future__ import annotations

import subprocess
import sys

import llmship


def test_every_public_name_resolves():
    for name in llmship.__all__:
        assert getattr(llmship, name) is not None, name


def test_error_tree_has_one_root():
    for name in (
        "ConfigError",
        "DataError",
        "ModelError",
        "TrainError",
        "EvalError",
        "PackageError",
    ):
        assert issubclass(getattr(llmship, name), llmship.LlmshipError)


def test_import_and_config_loading_do_not_import_torch():
    code = (
        "import sys, llmship, llmship.config.loader, llmship.errors; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_model_server_never_imports_boto3():
    code = (
        "import sys, llmship.serve.app, llmship.serve.server, llmship.serve.emulate; "
        "print('boto3' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_aws_modules_never_import_torch():
    code = "import sys, llmship.aws.session, llmship.state; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
