"""Every YAML snippet in the README loads with the real config loader, so a documented
example cannot drift from the schema (the gateway example once named a target with a key
the config refuses).

A snippet is a whole llmship.yaml or a part of one (only `gateway:`, only `deploy:`...):
either way it is written to a file and loaded as a config, requiring no section it does
not give, as the CLI loads a config kept for one command. Anything else (a fragment from
inside a section, a list, keys that are no section) fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llmship.config.loader import load_config
from llmship.config.schema import LlmshipConfig
from llmship.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
SECTIONS = set(LlmshipConfig.model_fields)


def snippets() -> list[tuple[int, str]]:
    """(line of the opening fence, text) of each ```yaml block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_the_readme_has_yaml_snippets():
    assert snippets(), f"no ```yaml blocks found in {README}: is the fence pattern stale?"


@pytest.mark.parametrize(
    ("line", "text"), snippets(), ids=[f"README.md:{line}" for line, _ in snippets()]
)
def test_readme_snippet_is_a_valid_config(line, text, tmp_path):
    where = f"README.md:{line}"
    tree = yaml.safe_load(text)
    if not isinstance(tree, dict) or not tree:
        pytest.fail(f"{where}: a YAML snippet must be llmship.yaml or some of its sections")
    unknown = sorted(set(tree) - SECTIONS)
    if unknown:
        pytest.fail(
            f"{where}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
            f"llmship.yaml sections ({', '.join(sorted(SECTIONS))}); show the section a "
            "fragment belongs to"
        )
    path = tmp_path / "llmship.yaml"
    path.write_text(text, encoding="utf-8")
    env = {name: "example" for name in REFERENCE.findall(text)}  # ${VAR}s are documented
    try:
        load_config(path, env=env, require=())
    except ConfigError as exc:
        pytest.fail(f"{where}: the documented config does not load:\n{exc}")


def test_a_snippet_the_config_refuses_is_caught(tmp_path):
    """The check itself: the README's old gateway example (`url:`) does not load, and the
    error names the keys a target takes."""
    path = tmp_path / "llmship.yaml"
    path.write_text(
        'gateway:\n  routes:\n    r:\n      targets:\n        - {url: "http://127.0.0.1:8080"}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, require=())
    assert "gateway.routes.r.targets.0.url (line 5): unknown key" in str(info.value)
    assert "allowed here: local, sagemaker, bedrock, weight" in str(info.value)
