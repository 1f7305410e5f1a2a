"""The Hugging Face PyTorch inference containers an artifact can target, by the
transformers version each pins (4.51.3 is what deploy chooses today; 4.48 and 4.49
images are still in wide use; 5.5.3 is the newest).

An artifact must load there exactly as it does locally: transformers 5 writes config
and tokenizer files that 4.x rejects or silently misreads, so what `package` writes
depends on the major version targeted.
"""

from __future__ import annotations

from llmship.errors import ConfigError

TRANSFORMERS_VERSIONS = ("4.48.0", "4.49.0", "4.51.3", "5.5.3")
DEFAULT_TRANSFORMERS = "4.51.3"


def target_major(transformers_version: str | None) -> int:
    """The transformers major version of the target container (checked against the table)."""
    version = transformers_version or DEFAULT_TRANSFORMERS
    if version not in TRANSFORMERS_VERSIONS:
        known = ", ".join(TRANSFORMERS_VERSIONS)
        raise ConfigError(
            f"package.transformers_version {version!r} is not a known Hugging Face inference "
            f"container; choose one of: {known}"
        )
    return int(version.split(".")[0])
