"""`llmship bench ...`: benchmarks whose results go in BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmship.cli._common import console

app = typer.Typer(
    help="Benchmarks (results with their command in BENCHMARKS.md).", no_args_is_help=True
)


@app.command("serve")
def serve(
    shape: Annotated[
        str, typer.Option(help="Model shape built on the spot: cpu-small or llama-3.2-1b.")
    ] = "cpu-small",
    model: Annotated[
        Path | None, typer.Option(help="A model directory instead of a shape.", show_default=False)
    ] = None,
    input_len: Annotated[int, typer.Option(help="Prompt tokens.")] = 128,
    output_len: Annotated[int, typer.Option(help="Output tokens (EOS ignored).")] = 64,
    shared_prefix: Annotated[
        int,
        typer.Option(
            min=0,
            help="Prompt tokens every request starts with (a system prompt); llmship then "
            "also runs with its prefix cache off, for the TTFT it saves.",
        ),
    ] = 0,
    num_prompts: Annotated[
        str, typer.Option(help="Requests per setting: one number, or one per concurrency.")
    ] = "32",
    concurrency: Annotated[
        str, typer.Option(help="Closed-loop concurrencies, e.g. 1,8,64.")
    ] = "1,8",
    request_rate: Annotated[
        float | None,
        typer.Option(
            help="Poisson arrivals per second (with --concurrency as the cap).", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="naive: per-request transformers generate on the same model, same run.",
            show_default=False,
        ),
    ] = None,
    baseline_prompts: Annotated[
        int | None,
        typer.Option(
            help="Requests per setting for the baseline (it serves one at a time).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for prompts and arrivals.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Save the results as JSON.", show_default=False)
    ] = None,
) -> None:
    """Serving throughput and latency by vLLM's method: TTFT, TPOT, ITL, end-to-end
    latency (mean, p50, p99) and output tokens/s.

    Example: llmship bench serve --shape cpu-small --concurrency 1,8 --baseline naive
    """
    import torch

    from llmship.bench.runner import bench_serve
    from llmship.bench.serving import save

    if shared_prefix >= input_len:
        raise typer.BadParameter(
            f"{shared_prefix} is not below --input-len {input_len}: every prompt needs "
            "tokens of its own",
            param_hint="--shared-prefix",
        )
    levels = tuple(int(c) for c in concurrency.split(","))
    counts = tuple(int(n) for n in num_prompts.split(","))
    if len(counts) not in (1, len(levels)):
        raise typer.BadParameter(
            f"{len(counts)} counts for {len(levels)} concurrencies", param_hint="--num-prompts"
        )
    results = bench_serve(
        shape,
        model,
        input_len,
        output_len,
        counts * len(levels) if len(counts) == 1 else counts,
        levels,
        request_rate,
        baseline,
        seed,
        baseline_prompts=baseline_prompts,
        shared_prefix=shared_prefix,
    )
    table = Table(
        "server",
        "conc.",
        "out tok/s",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "TPOT p50 ms",
        "ITL p50 ms",
        "ITL p99 ms",
        "E2E p50 ms",
        "failed",
    )
    for r in results:
        table.add_row(
            r.server,
            str(r.concurrency),
            f"{r.output_tok_s:,.1f}",
            f"{r.ttft_ms_p50:.1f}",
            f"{r.ttft_ms_p99:.1f}",
            f"{r.tpot_ms_p50:.2f}",
            f"{r.itl_ms_p50:.2f}",
            f"{r.itl_ms_p99:.2f}",
            f"{r.e2e_ms_p50:.0f}",
            str(r.failed),
        )
    console.print(table)
    by = {(r.server, r.concurrency): r.output_tok_s for r in results}
    top = max(levels)
    if ("llmship", 1) in by and top != 1:
        console.print(
            f"llmship at concurrency {top} vs sequential: "
            f"{by[('llmship', top)] / by[('llmship', 1)]:.2f}x"
        )
    if ("naive", top) in by:
        console.print(
            f"llmship vs naive at concurrency {top}: "
            f"{by[('llmship', top)] / by[('naive', top)]:.2f}x"
        )
    ttft = {(r.server, r.concurrency): r.ttft_ms_p50 for r in results}
    for level in levels if shared_prefix else ():
        on, off = ttft[("llmship", level)], ttft[("llmship-no-prefix-cache", level)]
        console.print(
            f"prefix cache at concurrency {level}: TTFT p50 {on:.1f} ms against {off:.1f} ms "
            f"off ({off / on:.2f}x)"
        )
    if out is not None:
        settings = {
            "shape": shape,
            "model": str(model) if model else None,
            "input_len": input_len,
            "output_len": output_len,
            "shared_prefix": shared_prefix,
            "num_prompts": [r.num_prompts for r in results],
            "concurrency": list(levels),
            "request_rate": request_rate,
            "baseline": baseline,
            "seed": seed,
            "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        }
        save(results, out, settings)
        console.print(f"saved {out}")


@app.command("train")
def train(
    shape: Annotated[
        str,
        typer.Option(
            help="Random-init Llama shape: llama-3.2-1b, cpu-small, cpu-vocab (128k vocabulary, "
            "tiny body) or cpu-tiny."
        ),
    ] = "cpu-small",
    seq_len: Annotated[
        int, typer.Option(help="Longest example; the plain loop's row width.")
    ] = 512,
    batch: Annotated[int, typer.Option(help="Rows per step at seq-len.")] = 8,
    variants: Annotated[
        str,
        typer.Option(
            help="Comma-separated: plain, llmship or qlora; @N sets the row length (same tokens "
            "per step), +option/-option turns a train option on/off, e.g. "
            "plain,llmship,llmship@2048+compile,llmship-chunked_loss."
        ),
    ] = "plain,llmship",
    steps: Annotated[int, typer.Option(min=1, help="Timed optimizer steps per variant.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps first.")] = 3,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (every linear layer).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed for the weights and the data.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Save the results as JSON.", show_default=False)
    ] = None,
) -> None:
    """Training tokens/s (non-padding), peak memory and MFU of llmship's training loop
    against the plain transformers + peft + AdamW loop, same model shape and data, each
    variant in a fresh process.

    Examples:
      llmship bench train --shape cpu-small --seq-len 512 --batch 8 --variants plain,llmship
      llmship bench train --shape cpu-vocab --seq-len 256 --batch 8
        --variants plain,llmship,llmship-chunked_loss
    """
    from llmship.bench.training import SHAPES, bench_train, format_table, parse_variant, save

    specs = [v.strip() for v in variants.split(",") if v.strip()]
    try:
        for spec in specs:
            parse_variant(spec, seq_len, batch)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--variants") from exc
    if shape not in SHAPES:
        raise typer.BadParameter(f"choose one of {', '.join(SHAPES)}", param_hint="--shape")
    results = bench_train(shape, seq_len, batch, specs, steps, warmup, seed, lora_r)
    typer.echo(format_table(results))
    if out is not None:
        settings = {
            "shape": shape,
            "seq_len": seq_len,
            "batch": batch,
            "variants": specs,
            "steps": steps,
            "warmup": warmup,
            "lora_r": lora_r,
            "seed": seed,
        }
        save(results, out, settings)
        console.print(f"saved {out}")
