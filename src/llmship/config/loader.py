"""Read llmship.yaml, apply --set overrides and ${VAR} references, validate.

Order: YAML -> overrides -> (snapshot taken here, references unresolved) -> ${VAR}
interpolation from the environment and the .env beside the file -> validation. Every
error names the key path, the line in the file (or the --set that caused it), the bad
value and what is allowed, before any work starts.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, SecretStr, ValidationError

from llmship.config.schema import LlmshipConfig
from llmship.config.section import section_type
from llmship.errors import ConfigError

DEFAULT_CONFIG_NAME = "llmship.yaml"
REDACTED = "<redacted>"
# Secret fields -> the environment variable that holds them when the config does not.
SECRET_ENVIRONMENT = {("model", "hf_token"): "HF_TOKEN"}
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
# Sections the schema lets a file leave out, and what to add when a command needs one.
# The library loads with all of them required (a run needs both); the CLI loads with
# none and each command asks for what it uses (LoadedConfig.require).
OPTIONAL_SECTIONS = {
    "model": "a model: section with name_or_path (a hub id or a local model directory)",
    "data": "a data: section with source (a .jsonl, .csv or .parquet file, or a hub dataset)",
}
REQUIRED_SECTIONS = tuple(OPTIONAL_SECTIONS)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from and what may be written to disk."""

    config: LlmshipConfig
    path: Path | None
    base_dir: Path
    snapshot: dict[str, Any] = field(repr=False)

    def resolve_path(self, value: str) -> str:
        """A local path relative to the config file, or the value unchanged (a hub id)."""
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = self.base_dir / candidate
        return str(candidate.resolve()) if candidate.exists() else value

    def snapshot_yaml(self) -> str:
        """The config as written (overrides applied, ${VAR} unresolved, secrets redacted)."""
        return yaml.safe_dump(self.snapshot, sort_keys=False, allow_unicode=True)

    def require(self, *sections: str, command: str) -> LoadedConfig:
        """This config, once it is known to give the sections `command` (e.g. "train")
        uses: a config kept for the gateway or `status` may leave model and data out,
        so the commands that read them say so, by key, before any work starts."""
        given = {name: getattr(self.config, name) for name in sections}
        problems = _missing_sections(given, sections, command)
        if problems:
            raise ConfigError(_report(str(self.path or "the config"), problems))
        return self


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    require: Collection[str] = REQUIRED_SECTIONS,
) -> LoadedConfig:
    """Load and validate a config file; `overrides` are `key.path=value` strings;
    `require` names the optional sections (model, data) that must be given."""
    config_path = Path(path) if path is not None else Path(DEFAULT_CONFIG_NAME)
    if not config_path.is_file():
        hint = "run `llmship init` to write one" if path is None else "check the path"
        raise ConfigError(f"config file {config_path} not found; {hint}")
    text = config_path.read_text(encoding="utf-8")
    raw, lines = _parse_yaml(text, str(config_path))
    return load_config_dict(
        raw,
        overrides=overrides,
        env=env,
        source=str(config_path),
        base_dir=config_path.resolve().parent,
        lines=lines,
        config_path=config_path,
        require=require,
    )


def load_config_dict(
    raw: Mapping[str, Any],
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
    lines: Mapping[tuple[str, ...], int] | None = None,
    config_path: Path | None = None,
    require: Collection[str] = REQUIRED_SECTIONS,
) -> LoadedConfig:
    """Validate an already-parsed config mapping (the entry point and tests use this)."""
    base_dir = base_dir or Path.cwd()
    tree = copy.deepcopy(dict(raw))
    overridden = apply_overrides(tree, overrides)
    environment = _environment(base_dir, env)
    resolved = _interpolate(tree, environment, (), source, lines or {})
    missing = _missing_sections(resolved, require)
    try:
        config = LlmshipConfig.model_validate(resolved)
    except ValidationError as exc:
        problems = _describe(exc, lines or {}, overridden)
        raise ConfigError(_report(source, [*missing, *problems])) from None
    if missing:
        raise ConfigError(_report(source, missing))
    snapshot = _redact_secrets(tree, LlmshipConfig)
    return LoadedConfig(config=config, path=config_path, base_dir=base_dir, snapshot=snapshot)


def reload_saved(
    path: Path,
    current: LoadedConfig,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """A run's saved config (to resume it), validated again. A secret that was a literal
    was saved as the placeholder, never the value: it comes from the current config, else
    from its environment variable; resuming without either is an error, not a run with
    "<redacted>" as the secret."""
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    environment = _environment(current.base_dir, env)
    _restore_secrets(tree, LlmshipConfig, current.config, environment, (), str(path))
    return load_config_dict(tree, overrides, env=env, source=str(path), base_dir=current.base_dir)


def _restore_secrets(
    tree: dict[str, Any],
    model: type[BaseModel],
    current: BaseModel | None,
    environment: Mapping[str, str],
    path: tuple[str, ...],
    source: str,
) -> None:
    for name, info in model.model_fields.items():
        annotation, value = info.annotation, tree.get(name)
        here = getattr(current, name, None)
        section = section_type(annotation)
        if section is not None:
            if isinstance(value, dict):
                _restore_secrets(value, section, here, environment, (*path, name), source)
        elif _is_secret(annotation) and value == REDACTED:
            variable = SECRET_ENVIRONMENT.get((*path, name))
            if here is not None:
                tree[name] = here.get_secret_value()
            elif variable and environment.get(variable):
                tree[name] = environment[variable]
            else:
                key = ".".join((*path, name))
                where = (
                    f"{key}: ${{{variable}}} in the config, or export {variable}"
                    if variable
                    else f"{key} in the config"
                )
                raise ConfigError(
                    f"{source}: {key} was written as a literal, so the run kept only a "
                    f"placeholder; to resume, set {where}"
                )


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> set[tuple[str, ...]]:
    """Set each `a.b.c=value` in place (value read as a YAML scalar); return the paths set."""
    paths: set[tuple[str, ...]] = set()
    for item in overrides:
        key, sep, value_text = item.partition("=")
        keys = tuple(part.strip() for part in key.split("."))
        if not sep or not all(keys):
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else None
        except yaml.YAMLError:
            value = value_text
        node = tree
        for depth, part in enumerate(keys[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"--set {item!r}: {where} is a value, not a section")
            node = child
        node[keys[-1]] = value
        paths.add(keys)
    return paths


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if data is None:
        raise ConfigError(f"{source} is empty; run `llmship init` for a starter config")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    lines: dict[tuple[str, ...], int] = {}
    _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[str, ...], out: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            out[key_path] = key_node.start_mark.line + 1
            _collect_lines(value_node, key_path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*path, str(index))] = item.start_mark.line + 1
            _collect_lines(item, (*path, str(index)), out)


def _environment(base_dir: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment over the .env file beside the config."""
    dotenv_file = base_dir / ".env"
    values = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
    values.update(os.environ if env is None else env)
    return values


def _interpolate(value: Any, env: Mapping[str, str], path: tuple, source: str, lines) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, str(k)), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, str(i)), source, lines) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        key = ".".join(path)
        where = _where(source, lines, path)
        raise ConfigError(
            f"{where}: {key} refers to ${{{name}}}, which is not set; set it in the environment "
            f"or in .env beside the config, or write ${{{name}:-}} to make it optional"
        )

    result = _REFERENCE.sub(substitute, value)
    whole = _REFERENCE.fullmatch(value)
    if whole and result == "":
        return None
    return result


def _where(source: str, lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> str:
    line = lines.get(tuple(path))
    return f"{source}:{line}" if line else source


def _missing_sections(
    tree: Mapping[str, Any], require: Iterable[str], command: str | None = None
) -> list[str]:
    """A problem line for each required optional section the config does not give."""
    by = f" by `llmship {command}`" if command else ""
    return [
        f"  - {name}: required{by}, but not given; add {OPTIONAL_SECTIONS[name]}"
        for name in require
        if tree.get(name) is None
    ]


def _report(source: str, problems: list[str]) -> str:
    count = len(problems)
    header = f"{source}: {count} problem{'s' if count != 1 else ''} in the config"
    return "\n".join([header, *problems])


def _describe(exc: ValidationError, lines, overridden: set) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        if tuple(loc) in overridden:
            origin = f"--set {key}"
        elif tuple(loc) in lines:
            origin = f"line {lines[tuple(loc)]}"
        else:
            origin = "missing" if error["type"] == "missing" else ""
        label = f"{key} ({origin})" if origin else key
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            problems.append(f"  - {label}: unknown key; allowed here: {allowed}")
        elif error["type"] == "missing":
            problems.append(f"  - {key}: required, but not given")
        else:
            shown = error.get("input")
            problems.append(f"  - {label}: {shown!r} is not allowed: {error['msg']}")
    return problems


def _allowed_keys(section_path: tuple[str, ...]) -> list[str]:
    """The keys of the section at `section_path`, also inside a mapping of sections or a
    list of them (gateway.routes.NAME.targets.0: local, sagemaker, bedrock, ...)."""
    annotation: Any = LlmshipConfig
    for part in section_path:
        section = section_type(annotation)
        if section is not None and part in section.model_fields:
            annotation = section.model_fields[part].annotation
        elif section is None and get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]  # past a route name or a list index
        else:
            return []
    section = section_type(annotation)
    return list(section.model_fields) if section is not None else []


def _redact_secrets(tree: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Keep ${VAR} references for secret fields; replace literal secret values."""
    out = copy.deepcopy(tree)
    for name, info in model.model_fields.items():
        if name not in out:
            continue
        annotation = info.annotation
        section = section_type(annotation)
        if section is not None:
            if isinstance(out[name], dict):
                out[name] = _redact_secrets(out[name], section)
        elif (
            _is_secret(annotation)
            and isinstance(out[name], str)
            and not _REFERENCE.fullmatch(out[name])
        ):
            out[name] = REDACTED
    return out


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())
