"""Rebuild src/llmship/sagemaker/data/images.json from the SageMaker Python SDK's image facts.

AWS keeps the container image facts (repository, tag parts, registry account per region)
as JSON in https://github.com/aws/sagemaker-python-sdk, under
`sagemaker-core/src/sagemaker/core/image_uri_config/` (older releases:
`src/sagemaker/image_uri_config/`). llmship reads a small generated extract instead of
depending on the SDK: the Hugging Face PyTorch inference containers llmship packages
for, the newest TGI and LMI (DJL) containers, and the Hugging Face PyTorch training
containers `llmship train --target sagemaker` runs in (each pins transformers and
PyTorch; the job's requirements.txt keeps both).

Usage:
    python scripts/refresh_image_facts.py PATH [--commit SHA] [--date YYYY-MM-DD] [--out FILE]

PATH is a checkout of the SDK, or a directory holding huggingface.json,
huggingface-llm.json and djl-lmi.json downloaded from it. The commit is read from the
checkout when PATH is a git work tree; pass --commit for downloaded files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

SOURCE_URL = "https://github.com/aws/sagemaker-python-sdk"
CONFIG_DIRS = (
    "sagemaker-core/src/sagemaker/core/image_uri_config",
    "src/sagemaker/image_uri_config",
)
FILES = {"huggingface": "huggingface.json", "tgi": "huggingface-llm.json", "lmi": "djl-lmi.json"}
OUT = Path(__file__).resolve().parents[1] / "src/llmship/sagemaker/data/images.json"

# The Hugging Face inference containers llmship writes artifacts for (plus the newest).
HF_VERSIONS = ("4.48.0", "4.49.0", "4.51.3")
HF_DEFAULT = "4.51.3"
RECENT = 4  # how many of the newest TGI and LMI versions to keep
# The Hugging Face training containers llmship trains in (plus the newest); the default
# is the newest 5.x, the transformers major llmship itself is written for.
HF_TRAINING_VERSIONS = ("4.49.0", "4.55.0", "4.56.2", "5.3.0")
HF_TRAINING_DEFAULT = "5.3.0"

# ECR host name suffix by partition; the isolated partitions (us-iso*, eu-isoe*, eusc-*)
# use other domains and are left out.
SUFFIXES = (("cn-", "amazonaws.com.cn"), ("us-gov-", "amazonaws.com"))
ISOLATED = ("us-iso", "eu-isoe", "eusc-")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_config_dir(root: Path) -> Path:
    for candidate in (root, *(root / d for d in CONFIG_DIRS)):
        if all((candidate / name).is_file() for name in FILES.values()):
            return candidate
    raise SystemExit(f"{root}: no {', '.join(FILES.values())} here or under {CONFIG_DIRS}")


def git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def host(region: str, account: str) -> str | None:
    if region.startswith(ISOLATED):
        return None
    suffix = next((s for prefix, s in SUFFIXES if region.startswith(prefix)), "amazonaws.com")
    return f"{account}.dkr.ecr.{region}.{suffix}"


class Registries:
    """One registry account per region across every container (checked, not assumed)."""

    def __init__(self) -> None:
        self.hosts: dict[str, str] = {}

    def regions(self, registries: dict[str, str]) -> list[str]:
        kept = []
        for region, account in registries.items():
            name = host(region, account)
            if name is None:
                continue
            if self.hosts.setdefault(region, name) != name:
                raise SystemExit(f"{region}: two registry accounts ({self.hosts[region]}, {name})")
            kept.append(region)
        return sorted(kept)


def huggingface(
    config: dict,
    registries: Registries,
    scope: str = "inference",
    kept: tuple[str, ...] = HF_VERSIONS,
    default: str = HF_DEFAULT,
) -> dict:
    """The Hugging Face PyTorch images of `scope` (inference or training) for `kept`."""
    versions = config[scope]["versions"]
    newest = max(versions, key=version_key)
    wanted = sorted({*kept, newest}, key=version_key)
    missing = [v for v in wanted if v not in versions]
    if missing:
        raise SystemExit(f"huggingface.json lacks {scope} versions {missing}")
    out, repository = {}, None
    for version in wanted:
        pytorch = max((k for k in versions[version] if k.startswith("pytorch")), key=version_key)
        facts = versions[version][pytorch]
        repository = facts["repository"]
        torch_version, python = pytorch.removeprefix("pytorch"), facts["py_versions"][-1]
        out[version] = {
            "framework": {"transformers": version, "pytorch": torch_version, "python": python},
            "tags": {
                device: f"{torch_version}-transformers{version}-{device}-{python}-{suffix}"
                for device, suffix in sorted(facts["container_version"].items())
            },
            "regions": registries.regions(facts["registries"]),
        }
    return {"repository": repository, "default": default, "versions": out}


def tgi(config: dict, registries: Registries) -> dict:
    versions = config["inference"]["versions"]
    out, repository = {}, None
    for version in sorted(versions, key=version_key)[-RECENT:]:
        facts = versions[version]
        repository = facts["repository"]
        torch_version = facts["tag_prefix"].split("-tgi")[0]
        python = facts["py_versions"][-1]
        out[version] = {
            "framework": {"tgi": version, "pytorch": torch_version, "python": python},
            "tags": {
                device: f"{facts['tag_prefix']}-{device}-{python}-{suffix}"
                for device, suffix in sorted(facts["container_version"].items())
            },
            "regions": registries.regions(facts["registries"]),
        }
    return {"repository": repository, "default": max(out, key=version_key), "versions": out}


def lmi(config: dict, registries: Registries) -> dict:
    versions = config["versions"]
    out, repository = {}, None
    for version in sorted(versions, key=version_key)[-RECENT:]:
        facts = versions[version]
        repository = facts["repository"]
        match = re.fullmatch(
            r"(?P<djl>[\d.]+)-lmi(?P<lmi>[\d.]+)-(?P<cuda>cu\d+)", facts["tag_prefix"]
        )
        if match is None:
            raise SystemExit(f"djl-lmi.json {version}: unexpected tag {facts['tag_prefix']!r}")
        out[version] = {
            "framework": match.groupdict(),
            "tags": {"gpu": facts["tag_prefix"]},  # LMI tags carry no device part: GPU images
            "regions": registries.regions(facts["registries"]),
        }
    return {"repository": repository, "default": max(out, key=version_key), "versions": out}


def build(config_dir: Path, commit: str | None, date: str) -> dict:
    configs = {name: json.loads((config_dir / file).read_text()) for name, file in FILES.items()}
    registries = Registries()
    containers = {
        "huggingface": huggingface(configs["huggingface"], registries),
        "tgi": tgi(configs["tgi"], registries),
        "lmi": lmi(configs["lmi"], registries),
    }
    training = {
        "huggingface": huggingface(
            configs["huggingface"],
            registries,
            "training",
            HF_TRAINING_VERSIONS,
            HF_TRAINING_DEFAULT,
        )
    }
    return {
        "source": {
            "url": SOURCE_URL,
            "files": [f"{CONFIG_DIRS[0]}/{file}" for file in FILES.values()],
            "commit": commit,
            "retrieved": date,
        },
        "generated_by": "scripts/refresh_image_facts.py (do not edit by hand)",
        "registries": dict(sorted(registries.hosts.items())),
        "containers": containers,
        "training": training,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="SDK checkout, or a folder with the JSON files")
    parser.add_argument("--commit", help="SDK commit the files come from (default: git HEAD)")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    facts = build(find_config_dir(args.path), args.commit or git_commit(args.path), args.date)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(facts, indent=1) + "\n")
    kept = {name: list(c["versions"]) for name, c in facts["containers"].items()}
    kept.update({f"{n} training": list(c["versions"]) for n, c in facts["training"].items()})
    print(f"wrote {args.out}: {kept}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
