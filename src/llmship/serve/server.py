"""`llmship serve`: resolve what to serve, then run the app with uvicorn."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmship.config.serving import ServeConfig
from llmship.errors import PackageError
from llmship.package.build import build_artifact
from llmship.package.extract import safe_extract
from llmship.serve.limits import limits_for

DEFAULT_PORT = 8080
LOCAL_TRANSFORMERS = "5.5.3"  # files as this machine's transformers 5 writes them


def default_port() -> int:
    """SAGEMAKER_BIND_TO_PORT, as the containers read it, else 8080."""
    value = os.environ.get("SAGEMAKER_BIND_TO_PORT", str(DEFAULT_PORT))
    if not value.isdigit():
        raise PackageError(f"SAGEMAKER_BIND_TO_PORT={value!r} is not a port number")
    return int(value)


def resolve_artifact(
    source: str | Path, workdir: Path, transformers_version: str = LOCAL_TRANSFORMERS
) -> Path:
    """An artifact directory for `source`: a model.tar.gz (extracted safely), an artifact
    directory, or a run / model directory (packaged on the fly for `transformers_version`)."""
    source = Path(source)
    if source.is_file():
        return safe_extract(source, workdir / "artifact")
    if (source / "code" / "inference.py").is_file():
        return source
    if source.is_dir():
        return build_artifact(
            source, workdir / "artifact", "uncompressed", transformers_version
        ).path
    raise PackageError(f"{source} not found; give a model.tar.gz, an artifact directory or a run")


def _container_server(app, host: str, port: int, grace_s: float):
    """uvicorn, stopping as a SageMaker container should: on SIGTERM, stop taking new
    connections, let in-flight requests finish (up to `grace_s`; then they are
    cancelled, freeing their slots), then exit 0. A second SIGTERM stops at once."""
    import signal

    import uvicorn

    class ContainerServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if sig == signal.SIGTERM:  # an orderly stop, not to be re-raised after draining
                self.force_exit = self.should_exit
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

    # Idle keep-alive connections stay open longer than clients keep them pooled (httpx
    # and botocore: 5 s and more): a server that closes first races a client reusing the
    # connection, which then sees its request dropped.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=grace_s,
        timeout_keep_alive=75,
    )
    return ContainerServer(config)


def serve(
    source: str | Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    endpoint_name: str = "local",
    endpoint_kind: str = "realtime",
    settings: ServeConfig | None = None,
) -> None:
    """Serve until interrupted or stopped, within the bounds `settings` set (the
    `serve:` config section)."""
    from llmship.serve.app import create_app

    settings = settings or ServeConfig()
    limits = limits_for(endpoint_kind)
    with tempfile.TemporaryDirectory(prefix="llmship-serve-") as workdir:
        model_dir = resolve_artifact(source, Path(workdir))
        app = create_app(model_dir, endpoint_name, limits, settings)
        _container_server(app, host, port or default_port(), settings.shutdown_grace_s).run()
