"""The RUN argument of the commands that also take other paths (package, generate, serve,
publish): "latest" and run ids mean what they mean to `eval` and `deploy`, through the
same resolver (llmship.runs.resolve_run_argument)."""

from __future__ import annotations

from pathlib import Path

from llmship.cli._common import load_if_present

RUN_HELP = "'latest', a run id or a run directory"


def run_argument(which: str | Path, config: Path | None, overrides: list[str] | None) -> Path:
    """`which` as a path: "latest" or a run id becomes that run's directory under the
    config's project.runs_dir (./runs when there is no config); an existing path is used
    as given, without reading the config."""
    from llmship.runs import LATEST, resolve_run_argument

    if str(which) != LATEST and Path(which).exists():
        return Path(which)
    return resolve_run_argument(which, _runs_root(config, overrides))


def _runs_root(config: Path | None, overrides: list[str] | None) -> Path:
    """Where `llmship train` puts runs: from the config when one is given or ./llmship.yaml
    exists (a config without model or data will do), else the default runs_dir here."""
    from llmship.config.schema import ProjectConfig
    from llmship.runs import runs_root

    loaded = load_if_present(config, overrides)
    return runs_root(loaded) if loaded else Path(ProjectConfig().runs_dir)
