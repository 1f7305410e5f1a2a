"""Load test: llmship serve (or anything speaking its routes, e.g. the gateway) under
closed-loop concurrent clients mixing valid, malformed, oversized, slow-body and
disconnecting requests. Loopback only; bounded in time (--duration, at most 600 s per
setting) and in count (--max-requests per setting).

Each client loops for the duration: it picks a request kind (seeded), sends it, and
records what came back; a warm-up (--warmup, the same mix) is not counted. The run
passes when:
  - every status is a documented one (200, 400, 404, 406, 408, 413, 415, 424, 503) and
    every 503 carries Retry-After;
  - every valid request got a completion or a 503 with Retry-After, and with a queue at
    least as deep as the concurrency (max_batch + max_waiting >= clients), every one
    completed;
  - malformed and oversized requests got a 4xx (or a 503 with Retry-After);
  - after the run, max_batch requests at once all complete (no slot was leaked), and the
    server's RSS settled within --max-rss-growth-mb of where it was after the warm-up.
It prints a table and writes the figures as JSON.

    python bench/load_test.py --duration 60 --concurrency 64 256 --output load_test.json
    python bench/load_test.py --url http://127.0.0.1:8080 --name NAME --pid PID --queue-depth N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import httpx

from llmship.bench.serving import percentile

DOCUMENTED = {200, 400, 404, 406, 408, 413, 415, 424, 503}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_DURATION_S, MAX_CONCURRENCY, MAX_REQUESTS = 600.0, 1024, 1_000_000
# Share of each kind of request in the mix.
MIX = {"valid": 0.55, "malformed": 0.15, "oversized": 0.1, "slow_body": 0.1, "disconnect": 0.1}
PROMPTS = ["Anna will bring the cake", "Summarize: Tom is late again", "The meeting moved to"]


@dataclass
class Record:
    """One request as its client saw it."""

    kind: str
    route: str
    status: int | None = None  # None: no answer (the client left, or a transport error)
    retry_after: bool = False
    latency_s: float = 0.0
    error: str | None = None


CLOSED_AFTER_BODY_TIMEOUT = "closed by the server after its body timeout (408) while sending"


@dataclass
class Setting:
    """The figures of one concurrency setting."""

    concurrency: int
    duration_s: float
    requests: int
    by_kind: dict[str, int]
    statuses: dict[str, int]
    valid: int
    valid_completed: int
    valid_503: int
    p50_ms: float
    p99_ms: float
    requests_s: float
    rss_start_mb: float | None
    rss_peak_mb: float | None
    failures: list[str] = field(default_factory=list)


class Target:
    """Where the requests go and how each kind is made."""

    def __init__(self, url: str, name: str, routes: list[str], api_key: str | None, tokens: int):
        self.url, self.name, self.routes, self.tokens = url.rstrip("/"), name, routes, tokens
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.body_timeout_s: float | None = None  # the server's, where known

    def path(self, route: str) -> str:
        return {
            "openai": "/v1/completions",
            "sagemaker": "/invocations",
            "runtime": f"/endpoints/{self.name}/invocations",
        }[route]

    def valid_body(self, route: str, rng: random.Random, stream: bool = False) -> dict:
        prompt = rng.choice(PROMPTS)
        if route == "openai":
            body = {"model": self.name, "prompt": prompt, "max_tokens": self.tokens}
            return {**body, "temperature": 0, "stream": stream}
        return {"inputs": prompt, "parameters": {"max_new_tokens": self.tokens}}


async def one_request(
    client: httpx.AsyncClient, target: Target, rng: random.Random, payload_limit: int
) -> Record:
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    route = rng.choice(target.routes)
    url = target.url + target.path(route)
    record = Record(kind, route)
    started = time.perf_counter()
    try:
        if kind == "valid":
            stream = route == "openai" and rng.random() < 0.5
            body = target.valid_body(route, rng, stream)
            if stream:
                async with client.stream("POST", url, json=body, headers=target.headers) as r:
                    text = (await r.aread()).decode()
                    _answered(record, r)
                    if r.status_code == 200 and not text.rstrip().endswith("data: [DONE]"):
                        record.error = "the stream ended without [DONE]"
            else:
                _answered(record, await client.post(url, json=body, headers=target.headers))
        elif kind == "malformed":
            choice = rng.randrange(3)
            if choice == 0:
                content, headers = b'{"inputs": "unterminated', {"Content-Type": "application/json"}
            elif choice == 1:
                content, headers = b"a,b,c", {"Content-Type": "text/csv"}
            else:
                wrong = {"inputs": "x", "parameters": {"no_such_parameter": 1}}
                if route == "openai":
                    wrong = {"model": target.name, "prompt": "x", "no_such_parameter": 1}
                content, headers = json.dumps(wrong).encode(), {"Content-Type": "application/json"}
            response = await client.post(
                url, content=content, headers={**headers, **target.headers}
            )
            _answered(record, response)
        elif kind == "oversized":
            if rng.random() < 0.7:  # more tokens than the context holds
                body = target.valid_body(route, rng)
                if route == "openai":
                    body["max_tokens"] = 1_000_000
                else:
                    body["parameters"]["max_new_tokens"] = 1_000_000
                _answered(record, await client.post(url, json=body, headers=target.headers))
            else:  # a body over the payload limit, declared up front (the server answers
                # from the header; bytes sent after it would only turn its close into a reset)
                record.status, record.retry_after = await _raw(
                    target, target.path(route), b"", declared=payload_limit + 1
                )
        elif kind == "slow_body":
            body = json.dumps(target.valid_body(route, rng)).encode()
            try:
                record.status, record.retry_after = await _raw(
                    target, target.path(route), body, pieces=4, pause_s=0.5
                )
            except (ConnectionResetError, BrokenPipeError):
                # A client starved of CPU can take longer than the server's body timeout
                # to send its pieces: the server answers 408 and closes, and the client's
                # next write meets the closed connection before it reads the answer.
                sending = time.perf_counter() - started
                if target.body_timeout_s is None or sending < target.body_timeout_s:
                    raise
                record.error = CLOSED_AFTER_BODY_TIMEOUT
        else:  # disconnect: mid-stream, before the answer, or mid-body
            how = rng.randrange(3)
            if how == 0 and "openai" in target.routes:
                body = target.valid_body("openai", rng, stream=True)
                url = target.url + target.path("openai")
                async with client.stream("POST", url, json=body, headers=target.headers) as r:
                    async for _ in r.aiter_bytes():
                        break
            elif how == 1:
                try:
                    body = target.valid_body(route, rng)
                    await client.post(url, json=body, headers=target.headers, timeout=0.05)
                except httpx.TimeoutException:
                    pass
            else:
                body = json.dumps(target.valid_body(route, rng)).encode()
                await _raw(target, target.path(route), body[: len(body) // 2], hang_up=True)
    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:200]
    record.latency_s = time.perf_counter() - started
    return record


def _answered(record: Record, response: httpx.Response) -> None:
    record.status = response.status_code
    record.retry_after = "retry-after" in response.headers


async def _raw(
    target: Target,
    path: str,
    body: bytes,
    declared: int | None = None,
    pieces: int = 1,
    pause_s: float = 0.0,
    hang_up: bool = False,
) -> tuple[int | None, bool]:
    """A request written by hand: its body in `pieces` with pauses (a slow client), cut
    short (`hang_up`), or with a larger length declared than is sent."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        auth = "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {target.host}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {declared or len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        size = -(-len(body) // pieces)
        for index in range(pieces):
            writer.write(body[index * size : (index + 1) * size])
            await writer.drain()
            if pause_s and index < pieces - 1:
                await asyncio.sleep(pause_s)
        if hang_up:
            return None, False
        status_line = await asyncio.wait_for(reader.readline(), 120)
        headers = []
        while (line := await asyncio.wait_for(reader.readline(), 30)) not in (b"\r\n", b""):
            headers.append(line.decode("latin-1").lower())
        status = int(status_line.split()[1]) if status_line else None
        return status, any(h.startswith("retry-after:") for h in headers)
    finally:
        writer.close()


class RssSampler:
    """The server process's resident memory, sampled in the background."""

    def __init__(self, pid: int | None):
        import psutil

        self.process = psutil.Process(pid) if pid else None
        self.peak = 0.0

    def now_mb(self) -> float | None:
        if self.process is None:
            return None
        return self.process.memory_info().rss / 1e6

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.peak = max(self.peak, self.now_mb() or 0.0)
            await asyncio.sleep(0.25)


async def run_setting(
    target: Target,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    payload_limit: int,
    queue_depth: int | None,
    rss: RssSampler,
    seed: int,
    documented: frozenset[int],
) -> tuple[Setting, list[Record]]:
    records: list[Record] = []
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    deadline = time.monotonic() + duration_s
    rss_start = rss.now_mb()
    rss.peak = rss_start or 0.0
    stop = asyncio.Event()
    sampler = asyncio.create_task(rss.run(stop))
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker(index: int) -> None:
            rng = random.Random(seed * 100_003 + index)
            while time.monotonic() < deadline and len(records) < max_requests:
                records.append(await one_request(client, target, rng, payload_limit))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    stop.set()
    await sampler
    setting = summarize(records, concurrency, elapsed, queue_depth, rss_start, rss.peak, documented)
    return setting, records


def summarize(
    records: list[Record],
    concurrency: int,
    elapsed: float,
    queue_depth: int | None,
    rss_start: float | None,
    rss_peak: float | None,
    documented: frozenset[int] = frozenset(DOCUMENTED),
) -> Setting:
    """The figures and the failed criteria of one setting (a pure function)."""
    failures: list[str] = []
    statuses = Counter(str(r.status) for r in records if r.status is not None)
    statuses.update(
        "408 closed while sending" for r in records if r.error == CLOSED_AFTER_BODY_TIMEOUT
    )
    for status in sorted({r.status for r in records if r.status is not None} - documented):
        failures.append(f"{statuses[str(status)]} answers with undocumented status {status}")
    bare_503 = sum(1 for r in records if r.status == 503 and not r.retry_after)
    if bare_503:
        failures.append(f"{bare_503} answers 503 without Retry-After")
    valid = [r for r in records if r.kind == "valid"]
    completed = [r for r in valid if r.status == 200 and r.error is None]
    refused = [r for r in valid if r.status == 503]
    lost = [r for r in valid if not (r.status == 200 and r.error is None) and r.status != 503]
    if lost:
        sample = lost[0].error or lost[0].status
        failures.append(f"{len(lost)} valid requests neither completed nor got 503 (e.g. {sample})")
    if queue_depth is not None and queue_depth >= concurrency and refused:
        failures.append(f"{len(refused)} valid requests got 503 with a queue of {queue_depth}")
    for kind in ("malformed", "oversized"):
        wrong = [r for r in records if r.kind == kind and not (r.status and 400 <= r.status < 500)]
        wrong = [r for r in wrong if r.status != 503]
        if wrong:
            sample = wrong[0].error or wrong[0].status
            failures.append(f"{len(wrong)} {kind} requests got no 4xx (e.g. {sample})")
    slow = [
        r
        for r in records
        if r.kind == "slow_body"
        and r.status not in (200, 408, 503)
        and r.error != CLOSED_AFTER_BODY_TIMEOUT
    ]
    if slow:
        failures.append(f"{len(slow)} slow-body requests got {slow[0].status or slow[0].error}")
    latencies = [r.latency_s * 1000 for r in completed]
    return Setting(
        concurrency=concurrency,
        duration_s=round(elapsed, 2),
        requests=len(records),
        by_kind=dict(Counter(r.kind for r in records)),
        statuses=dict(sorted(statuses.items())),
        valid=len(valid),
        valid_completed=len(completed),
        valid_503=len(refused),
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        requests_s=round(len(records) / elapsed, 1) if elapsed else 0.0,
        rss_start_mb=None if rss_start is None else round(rss_start, 1),
        rss_peak_mb=None if rss_start is None else round(rss_peak, 1),
        failures=failures,
    )


async def probe_slots(target: Target, max_batch: int) -> str | None:
    """After the run: max_batch valid requests at once must all complete (no leaked slot)."""
    rng = random.Random(0)
    route = "openai" if "openai" in target.routes else target.routes[0]
    async with httpx.AsyncClient(timeout=60) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    target.url + target.path(route),
                    json=target.valid_body(route, rng),
                    headers=target.headers,
                )
                for _ in range(max_batch)
            ),
            return_exceptions=True,
        )
    bad = [r for r in replies if not isinstance(r, httpx.Response) or r.status_code != 200]
    return f"after the run, {len(bad)} of {max_batch} requests failed: {bad[0]}" if bad else None


def start_server(work: Path, max_batch: int, max_waiting: int, body_timeout_s: float):
    """`llmship serve` on a tiny random-init model in a process of its own."""
    from llmship.models.tiny import TinySpec, create_tiny_model
    from llmship.package.build import build_artifact
    from llmship.serve.background import free_port, wait_until_healthy

    spec = TinySpec(hidden_size=64, intermediate_size=128, heads=4, kv_heads=2, layers=2)
    model = create_tiny_model(work / "model", "llama", spec)
    artifact = build_artifact(model, work / "artifact", "uncompressed", "5.5.3").path
    port = free_port()
    command = [
        sys.executable, "-c", "from llmship.cli import main; main()", "serve", str(artifact),
        "--port", str(port), "--name", "load", "--max-batch", str(max_batch),
        "--max-waiting", str(max_waiting), "--body-timeout", str(body_timeout_s),
    ]  # fmt: skip
    log = (work / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, 300)
    return process, url


def print_table(settings: list[Setting]) -> None:
    columns = [
        ("clients", "concurrency"),
        ("requests", "requests"),
        ("req/s", "requests_s"),
        ("valid", "valid"),
        ("done", "valid_completed"),
        ("503", "valid_503"),
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("RSS MB", "rss_start_mb"),
        ("peak MB", "rss_peak_mb"),
    ]
    print(" ".join(f"{title:>9}" for title, _ in columns) + "  result")
    for setting in settings:
        values = [getattr(setting, key) for _, key in columns]
        verdict = "pass" if not setting.failures else "FAIL: " + "; ".join(setting.failures)
        print(" ".join(f"{v if v is not None else '-'!s:>9}" for v in values) + "  " + verdict)
        print(f"{'':>9} statuses {setting.statuses}")


async def main_async(args: argparse.Namespace) -> int:
    host = urlparse(args.url).hostname if args.url else "127.0.0.1"
    if host not in LOOPBACK:
        print(f"refusing {args.url}: the load test only targets loopback", file=sys.stderr)
        return 2
    duration = min(args.duration, MAX_DURATION_S)
    concurrencies = [min(c, MAX_CONCURRENCY) for c in args.concurrency]
    max_requests = min(args.max_requests, MAX_REQUESTS)
    process = None
    with tempfile.TemporaryDirectory(prefix="llmship-load-") as workdir:
        if args.url:
            url, pid, queue_depth = args.url, args.pid, args.queue_depth
        else:
            waiting = args.max_waiting if args.max_waiting is not None else max(concurrencies)
            process, url = start_server(Path(workdir), args.max_batch, waiting, args.body_timeout)
            pid, queue_depth = process.pid, args.max_batch + waiting
        target = Target(url, args.name, args.routes.split(","), args.api_key, args.tokens)
        target.body_timeout_s = args.body_timeout
        rss = RssSampler(pid)
        try:
            documented = frozenset(DOCUMENTED | set(args.allow_status))
            # Warm-up: the same mix, not counted, so the RSS baseline has seen every path.
            await run_setting(
                target,
                concurrencies[0],
                min(args.warmup, MAX_DURATION_S),
                max_requests,
                args.payload_limit,
                queue_depth,
                rss,
                args.seed + 1,
                documented,
            )
            settings = []
            for concurrency in concurrencies:
                setting, _ = await run_setting(
                    target,
                    concurrency,
                    duration,
                    max_requests,
                    args.payload_limit,
                    queue_depth,
                    rss,
                    args.seed,
                    documented,
                )
                settings.append(setting)
            problem = await probe_slots(target, args.max_batch)
            await asyncio.sleep(args.settle)
            rss_after = rss.now_mb()
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
    baseline = settings[0].rss_start_mb
    growth = None if rss_after is None or baseline is None else round(rss_after - baseline, 1)
    overall = [f for s in settings for f in s.failures]
    if problem:
        overall.append(problem)
    if growth is not None and growth > args.max_rss_growth_mb:
        overall.append(f"RSS grew {growth} MB after the run (limit {args.max_rss_growth_mb})")
    print_table(settings)
    print(
        f"RSS after the run and {args.settle:g} s settling: {rss_after and round(rss_after, 1)} MB "
        f"(growth {growth} MB); slots after the run: {problem or 'all free'}"
    )
    print("PASS" if not overall else "FAIL:\n  " + "\n  ".join(overall))
    result = {
        "bench": "serve-load",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "target": "started llmship serve (tiny model)" if process is not None else url,
        "settings": {k: v for k, v in vars(args).items() if k != "api_key"},
        "queue_depth": queue_depth,
        "results": [asdict(s) for s in settings],
        "rss_after_mb": rss_after and round(rss_after, 1),
        "rss_growth_mb": growth,
        "passed": not overall,
        "failures": overall,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0 if not overall else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
    parser.add_argument("--name", default="load", help="endpoint / model name it serves")
    parser.add_argument("--pid", type=int, help="the --url server's pid, for its RSS")
    parser.add_argument(
        "--queue-depth", type=int, help="the --url server's max_batch + max_waiting"
    )
    parser.add_argument("--api-key", help="sent as a Bearer token (e.g. to the gateway)")
    parser.add_argument(
        "--routes",
        default="openai,sagemaker,runtime",
        help="which of openai,sagemaker,runtime the target serves (the gateway: openai,runtime)",
    )
    parser.add_argument(
        "--allow-status",
        type=int,
        nargs="*",
        default=[],
        help="statuses the target documents besides the server's (the gateway: 401 429 502 504)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per setting")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of uncounted load")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per setting")
    parser.add_argument("--tokens", type=int, default=16, help="max new tokens per request")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-waiting", type=int, help="default: the highest concurrency")
    parser.add_argument("--body-timeout", type=float, default=5.0)
    parser.add_argument("--payload-limit", type=int, default=6 * 1024 * 1024)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the last RSS")
    parser.add_argument("--max-rss-growth-mb", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="load_test.json")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
