"""`llmship aws smoke`: the cheapest real proof that llmship works on an AWS account.

It builds the tiny model, packages it, deploys it through the ordinary SageMaker deploy
path on a serverless endpoint (billed per request, nothing while idle), invokes it once
and destroys everything it made (with the uploaded artifact and the endpoint's logs),
also when a step fails or is interrupted. It asks first, with the expected cost, once
the plan (read-only calls) has shown what would be created. Every AWS request's id and
error goes to a JSON report fit for a bug report; on failure the report also holds the
container's last log lines. Credentials and request parameters never go in it.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmship import __version__
from llmship.aws.request_log import RequestLog
from llmship.errors import DeployError, LlmshipError

if TYPE_CHECKING:
    from llmship.config.schema import LlmshipConfig
    from llmship.progress import Reporter
    from llmship.state import StateStore

# SageMaker Serverless Inference list price (us-east-1): USD per second of compute per GB
# of memory; other regions cost about as much (https://aws.amazon.com/sagemaker/pricing/).
SERVERLESS_USD_PER_GB_SECOND = 0.00002
# What one request could bill at most: a cold start counted in full, and the answer.
BILLED_SECONDS_BOUND = 120
SMOKE_MEMORY_MB = 2048
SMOKE_PROMPT = "Say hello."
WAIT_TIMEOUT_S = 1800.0


@dataclass
class Step:
    """One stage of the smoke test and how it went."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class SmokeResult:
    deployment: str
    region: str
    report: Path
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    cancelled: bool = False
    left: list[str] = field(default_factory=list)  # resources teardown could not remove

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(step.ok for step in self.steps) and not self.left

    @property
    def failure(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)


def expected_cost(memory_mb: int = SMOKE_MEMORY_MB) -> str:
    """What the smoke test costs, said before anything is created."""
    bound = memory_mb / 1024 * SERVERLESS_USD_PER_GB_SECOND * BILLED_SECONDS_BOUND
    return (
        f"under ${max(bound, 0.01):.2f}: one request to a serverless endpoint "
        f"({memory_mb} MB, billed per second of compute at about "
        f"${memory_mb / 1024 * SERVERLESS_USD_PER_GB_SECOND:.5f}/s, nothing while idle), "
        "a few MB in S3 and CloudWatch Logs; all of it deleted at the end"
    )


def smoke_config(config: LlmshipConfig, deployment: str, memory_mb: int) -> LlmshipConfig:
    """The user's project and aws settings; a serverless SageMaker deploy of the tiny model
    with llmship's default packaging (what a first deploy would use)."""
    from llmship.config.schema import DeployConfig, PackageConfig

    deploy = DeployConfig.model_validate(
        {
            "target": "sagemaker",
            "kind": "serverless",
            "name": deployment,
            "container": "huggingface",
            "serverless": {"memory_mb": memory_mb, "max_concurrency": 1},
        }
    )
    return config.model_copy(update={"deploy": deploy, "package": PackageConfig()})


def run_smoke(
    config: LlmshipConfig,
    *,
    confirm: Callable[[str], bool],
    report_path: Path,
    store: StateStore,
    say: Callable[[str], None] = print,
    reporter: Reporter | None = None,
    workdir: Path | None = None,
    session=None,
    memory_mb: int = SMOKE_MEMORY_MB,
    target_options: dict[str, Any] | None = None,
) -> SmokeResult:
    """Deploy the tiny model serverless, invoke it once, destroy it; report every request.

    Never leaves a resource behind on purpose: teardown runs whatever happened before it
    (a refused create, a failed endpoint, a failed invoke, Ctrl-C); what it cannot remove
    is listed in the result and the report with the command that removes it.
    """
    from llmship.aws.session import make_session
    from llmship.sagemaker.names import default_name
    from llmship.targets.sagemaker.target import SageMakerTarget

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"smoke-{stamp}"
    deployment = default_name(config.project.name, run_id)
    log = RequestLog()
    session = session or make_session(config.aws)
    log.attach(session)
    result = SmokeResult(deployment, session.region_name, report_path)
    extra: dict[str, Any] = {}
    options = {"timeout_seconds": WAIT_TIMEOUT_S, "poll_seconds": 15.0, **(target_options or {})}
    target = SageMakerTarget(store, config.aws, session=session, **options)
    settings = smoke_config(config, deployment, memory_mb)
    scratch = None if workdir is not None else tempfile.TemporaryDirectory(prefix="llmship-")
    root = Path(workdir if workdir is not None else scratch.name) / run_id
    try:
        with _step(result, "model", say):
            _build_model(root, settings)
        with _step(result, "plan", say):
            plan = target.plan(_request(settings, root, deployment))
            plan.check()
        question = (
            f"Create serverless endpoint {deployment} in {result.region}, invoke it once and "
            f"delete it? Expected cost {expected_cost(memory_mb)}."
        )
        with _step(result, "confirm", say, announce=False):
            approved = confirm(question)
        if not approved:
            result.cancelled = True
            say("nothing created")
            return result
        with _step(result, "deploy", say):
            target.apply(plan, reporter=reporter)
        with _step(result, "invoke", say):
            result.answer = _invoke(target, deployment)
    except LlmshipError:
        pass  # every step records its own error; teardown and the report follow
    finally:
        if result.failure is not None and store.resources(deployment):
            extra["container_logs"] = _log_tail(target, deployment)
        if store.resources(deployment):
            _teardown(target, store, deployment, result, say)
        _write_report(result, log, extra, memory_mb)
        if scratch is not None:
            scratch.cleanup()
    return result


@contextmanager
def _step(
    result: SmokeResult, name: str, say: Callable[[str], None], announce: bool = True
) -> Iterator[None]:
    """Time a stage and record how it ended; its exception still propagates."""
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        seconds = round(time.monotonic() - started, 1)
        detail = str(exc) if isinstance(exc, LlmshipError) else f"{type(exc).__name__}: {exc}"
        result.steps.append(Step(name, False, seconds, detail))
        say(f"{name}: FAILED: {detail}")
        raise
    seconds = round(time.monotonic() - started, 1)
    result.steps.append(Step(name, True, seconds))
    if announce:
        say(f"{name}: ok ({seconds:.0f} s)")


def _build_model(root: Path, config: LlmshipConfig) -> None:
    """The tiny random-init Llama as a run's model, packaged as deploy would package it."""
    from llmship.models.tiny import create_tiny_model
    from llmship.package.build import build_artifact

    create_tiny_model(root / "model", "llama")
    build_artifact(
        root,
        root / "artifact" / "model.tar.gz",
        config.package.format,
        config.package.transformers_version,
    )


def _request(config: LlmshipConfig, root: Path, deployment: str):
    from llmship.runs import RunDir
    from llmship.target import DeployRequest

    return DeployRequest(config, root.parent, RunDir(root), deployment)


def _invoke(target, deployment: str) -> str:
    from llmship.protocol.toolkit import prompt_body

    body = target.invoke(deployment, prompt_body(SMOKE_PROMPT, {"max_new_tokens": 8}))
    text = body.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
        if isinstance(answer, list) and answer and isinstance(answer[0], dict):
            return str(answer[0].get("generated_text", text))
    except ValueError:
        pass
    return text[:500]


def _log_tail(target, deployment: str) -> list[str]:
    """The endpoint container's last lines, read before teardown deletes its log group."""
    from llmship.aws.logs import last_lines
    from llmship.sagemaker.names import endpoint_log_group

    try:
        return last_lines(target.client("logs"), endpoint_log_group(deployment), limit=50)
    except Exception as exc:  # the report is still worth writing without them
        return [f"(could not read the container's logs: {exc})"]


def _teardown(target, store, deployment: str, result: SmokeResult, say) -> None:
    started = time.monotonic()
    try:
        deleted = target.destroy(deployment, purge=True)
        error = ""
    except Exception as exc:  # teardown must report, whatever stopped it
        deleted, error = [], str(exc)
    result.left = [f"{r.kind} {r.name}" for r in store.resources(deployment)]
    seconds = round(time.monotonic() - started, 1)
    if result.left:
        detail = (
            f"{error + '; ' if error else ''}left {', '.join(result.left)}: run "
            f"`llmship destroy {deployment} --purge` to remove them"
        )
        result.steps.append(Step("destroy", False, seconds, detail))
        say(f"destroy: FAILED: {detail}")
    else:
        result.steps.append(Step("destroy", True, seconds, f"deleted {len(deleted)} resources"))
        say(f"destroy: ok, deleted {', '.join(deleted)}")


def _write_report(result: SmokeResult, log: RequestLog, extra: dict, memory_mb: int) -> None:
    import boto3
    import botocore

    report = {
        "llmship": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "region": result.region,
        "deployment": result.deployment,
        "serverless_memory_mb": memory_mb,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": result.ok,
        "cancelled": result.cancelled,
        "steps": [asdict(step) for step in result.steps],
        "answer": result.answer,
        "left_behind": result.left,
        "requests": log.as_list(),
        "errors": [record.as_dict() for record in log.errors],
        **extra,
    }
    try:
        result.report.parent.mkdir(parents=True, exist_ok=True)
        result.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot write the smoke report {result.report}: {exc}") from exc
