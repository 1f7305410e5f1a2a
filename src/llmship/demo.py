"""`llmship demo`: the whole local pipeline on a tiny model and the bundled sample.

Creates a tiny Llama-shaped model (if absent), fine-tunes it with LoRA on the sample
dialogues, scores it with ROUGE, summarizes a new dialogue, packages the model as a
SageMaker artifact, validates it, serves it and invokes it through boto3's
sagemaker-runtime client (plain and streaming), then stops the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmship.config.loader import DEFAULT_CONFIG_NAME, LoadedConfig, load_config
from llmship.config.render import render_commented
from llmship.config.schema import LlmshipConfig
from llmship.data.samples import write_sample
from llmship.errors import PackageError
from llmship.models.generation import generate, load_finetuned
from llmship.models.tiny import create_tiny_model
from llmship.package.build import Artifact, build_artifact
from llmship.package.validate import validate_artifact
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.train.evaluation import EvalReport, evaluate
from llmship.train.run import train

DEMO_CONFIG = {
    "project": {"name": "demo"},
    "model": {"name_or_path": "tiny-llama", "max_length": 256},
    "data": {
        "source": "samsum_sample.jsonl",
        "input_field": "dialogue",
        "output_field": "summary",
        "prompt_template": "Summarize this dialogue:\n{dialogue}",
    },
    "train": {
        "epochs": 6,
        "batch_size": 8,
        "learning_rate": 5e-3,
        "warmup_ratio": 0.05,
        "save_steps": 100,
        "logging_steps": 10,
        "lora": {"r": 64, "alpha": 64, "dropout": 0.0},
    },
    "eval": {"max_samples": 24, "batch_size": 12, "generation": {"max_new_tokens": 40}},
}

DEMO_ENDPOINT = "demo"
UNSEEN_DIALOGUE = (
    "Grace: Can you buy juice on your way home?\n"
    "Max: Sure, anything else?\n"
    "Grace: No, just juice. Thanks!"
)


@dataclass
class DemoResult:
    config: Path
    run: RunDir
    report: EvalReport
    dialogue: str
    summary: str
    artifact: Artifact
    invoked: str
    streamed: list[str]


def run_demo(
    workdir: str | Path,
    say: Callable[[str], None] = print,
    reporter: Reporter | None = None,
    overrides: list[str] | None = None,
) -> DemoResult:
    """Run every local stage in `workdir`, saying what each did and where its output went."""
    reporter = reporter or RecordingReporter()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / DEMO_CONFIG["model"]["name_or_path"]
    if not (model_dir / "config.json").is_file():
        create_tiny_model(model_dir, "llama")
        say(f"1/7 model    created a tiny random-init Llama in {model_dir}")
    else:
        say(f"1/7 model    using the tiny Llama in {model_dir}")
    data_path = write_sample("samsum", workdir / DEMO_CONFIG["data"]["source"])
    say(f"2/7 data     wrote the bundled dialogue sample to {data_path}")
    config_path = workdir / DEFAULT_CONFIG_NAME
    if not config_path.is_file():
        tree = LlmshipConfig.model_validate(DEMO_CONFIG).model_dump(mode="json")
        config_path.write_text(render_commented(tree), encoding="utf-8")
    loaded: LoadedConfig = load_config(config_path, overrides or [])
    run, result = train(loaded, reporter=reporter)
    say(
        f"3/7 train    {result.state.step} LoRA steps on {result.train_rows} rows; "
        f"run directory {run.root}"
    )
    report = evaluate(run, loaded.config.eval, reporter)
    say(
        f"4/7 eval     ROUGE-1 {report.rouge1:.3f}  ROUGE-2 {report.rouge2:.3f}  "
        f"ROUGE-L {report.rougeL:.3f} on {report.rows} test rows; report {run.eval_report}, "
        f"loss curve {run.loss_plot}"
    )
    model = load_finetuned(run.model)
    summary = generate(model, [model.prompt_format.fields_for(UNSEEN_DIALOGUE)])[0]
    say(f"5/7 generate a new dialogue:\n{UNSEEN_DIALOGUE}\n  -> {summary}")
    artifact = build_artifact(run.root, run.root / "artifact" / "model.tar.gz")
    findings = validate_artifact(artifact.path)
    errors = [str(f) for f in findings if f.severity == "error"]
    if errors:
        raise PackageError("the demo artifact failed validation:\n" + "\n".join(errors))
    warnings = sum(f.severity == "warning" for f in findings)
    say(
        f"6/7 package  {artifact.path} ({artifact.bytes / 1024**2:.1f} MiB, for the "
        f"transformers {artifact.transformers_version} container); validate: 0 errors, "
        f"{warnings} warnings"
    )
    invoked, streamed, url = _serve_and_invoke(artifact.path, UNSEEN_DIALOGUE)
    say(
        f"7/7 serve    {url} answered boto3 sagemaker-runtime invoke_endpoint with {invoked}; "
        f"invoke_endpoint_with_response_stream streamed {len(streamed)} pieces; server stopped"
    )
    return DemoResult(
        config_path, run, report, UNSEEN_DIALOGUE, summary, artifact, invoked, streamed
    )


def _serve_and_invoke(artifact: Path, dialogue: str) -> tuple[str, list[str], str]:
    """Serve the artifact on loopback and call it as an application would call SageMaker."""
    import tempfile

    from llmship.aws.session import make_session, runtime_client
    from llmship.serve.app import create_app
    from llmship.serve.background import running
    from llmship.serve.limits import limits_for
    from llmship.serve.server import resolve_artifact

    body = json.dumps({"inputs": dialogue, "parameters": {"max_new_tokens": 40}}).encode()
    with tempfile.TemporaryDirectory(prefix="llmship-demo-") as workdir:
        model_dir = resolve_artifact(artifact, Path(workdir))
        with running(create_app(model_dir, DEMO_ENDPOINT, limits_for("realtime"))) as url:
            # Explicit placeholder credentials: the local server checks none, and the demo
            # must never pick up (or sign with) the user's real AWS keys.
            client = runtime_client(
                make_session(region="us-east-1"),
                "sagemaker-runtime",
                endpoint_url=url,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            response = client.invoke_endpoint(
                EndpointName=DEMO_ENDPOINT,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
            )
            invoked = response["Body"].read().decode()
            stream = client.invoke_endpoint_with_response_stream(
                EndpointName=DEMO_ENDPOINT, Body=body, ContentType="application/json"
            )
            lines = b"".join(e["PayloadPart"]["Bytes"] for e in stream["Body"]).splitlines()
            pieces = [
                json.loads(line)["token"]["text"] for line in lines if "token" in json.loads(line)
            ]
    return invoked, pieces, url
