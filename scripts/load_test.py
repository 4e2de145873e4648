#!/usr/bin/env python3
"""Load test for `dsv4 serve` on loopback: many concurrent streaming chat clients.

Each of --clients tasks loops until --duration seconds have passed: a random prompt, a random
max_tokens in [--min-tokens, --max-tokens], a random model (thinking or not), streamed with
usage. A fraction (--cancel-fraction) of the requests is deliberately abandoned after a few
chunks (the response is closed mid-stream). Afterwards /metrics is polled until the engine has
let go of everything (running sequences, state-pool slots and blocks all 0) within --settle
seconds.

Reports requests/s, output tokens/s, p50/p99 TTFT (time to the first content or reasoning
chunk), errors (any non-200 answer, 429 included, broken or unfinished streams) and the
cancelled count; prints a table and writes it as JSON (--json). Exits non-zero if there was
any error or the pool did not return to zero.

Uses httpx (the `httpx2` package that recent openai/anthropic SDKs install, or classic `httpx`).
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import urlsplit

try:
    import httpx2 as httpx
except ImportError:  # older SDKs install classic httpx
    import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = (
    "the a of and to in is you that it he was for on are as with his they at be this have from or one had by word but not "
    "what all were we when your can said there use an each which she do how their if will up other about out many then them "
    "these so some her would make like him into time has look two more write go see number no way could people my than first "
    "water been call who oil its now find long down day did get come made may part weather paris tokyo rust python model"
).split()
MODELS = ("deepseek-chat", "deepseek-reasoner")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GAUGES = ("dsv4_running_sequences", "dsv4_state_pool_slots_used", "dsv4_state_pool_blocks_used")


def percentile(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


class Stats:
    def __init__(self):
        self.started = 0
        self.completed = 0
        self.cancelled = 0
        self.errors = 0
        self.error_kinds = {}
        self.status_429 = 0
        self.ttft = []
        self.output_tokens = 0
        self.examples = []

    def error(self, kind, detail=""):
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail}"[:300])


async def one_request(http, args, rng, stats):
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40)))
    body = {
        "model": rng.choice(MODELS),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": rng.randint(args.min_tokens, args.max_tokens),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    cancel_after = rng.randint(2, 6) if rng.random() < args.cancel_fraction else None
    stats.started += 1
    t0 = time.monotonic()
    first = None
    chunks = 0
    done = False
    finish = None
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                if r.status_code == 429:
                    stats.status_429 += 1
                stats.error(f"http {r.status_code}", text)
                return
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                ev = json.loads(data)
                if "error" in ev:
                    stats.error("error event", data)
                    return
                chunks += 1
                for c in ev.get("choices") or []:
                    d = c.get("delta") or {}
                    if first is None and (d.get("content") or d.get("reasoning_content")):
                        first = time.monotonic() - t0
                    if c.get("finish_reason"):
                        finish = c["finish_reason"]
                if ev.get("usage"):
                    stats.output_tokens += ev["usage"].get("completion_tokens", 0)
                if cancel_after is not None and chunks >= cancel_after:
                    break  # leaving the block closes the connection mid-stream
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        stats.error(type(e).__name__, repr(e))
        return
    if first is not None:
        stats.ttft.append(first)
    if cancel_after is not None and not done:
        stats.cancelled += 1
    elif not done or finish is None:
        stats.error("incomplete stream", f"done={done} finish={finish} chunks={chunks}")
    else:
        stats.completed += 1


async def client_loop(http, args, seed, stats, deadline):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        await one_request(http, args, rng, stats)


async def read_gauges(http):
    r = await http.get("/metrics")
    r.raise_for_status()
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        if len(parts) == 2 and "{" not in parts[0]:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


async def wait_pool_empty(http, settle):
    t0 = time.monotonic()
    last = {}
    while True:
        try:
            last = await read_gauges(http)
            if all(last.get(g) == 0 for g in GAUGES):
                return True, time.monotonic() - t0, last
        except httpx.HTTPError as e:
            last = {"error": repr(e)}
        if time.monotonic() - t0 > settle:
            return False, time.monotonic() - t0, last
        await asyncio.sleep(0.1)


async def run(args):
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.clients + 8, max_keepalive_connections=args.clients + 8)
    timeout = httpx.Timeout(connect=10.0, read=args.read_timeout, write=10.0, pool=args.read_timeout)
    stats = Stats()
    async with httpx.AsyncClient(base_url=args.base_url, headers=headers, limits=limits, timeout=timeout, trust_env=False) as http:
        h = await http.get("/health")
        h.raise_for_status()
        before = await read_gauges(http)
        t0 = time.monotonic()
        deadline = t0 + args.duration
        tasks = [asyncio.create_task(client_loop(http, args, args.seed * 1000 + i, stats, deadline)) for i in range(args.clients)]
        _, pending = await asyncio.wait(tasks, timeout=args.duration + args.drain)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            stats.error("unfinished at the drain deadline", f"{len(pending)} clients still waiting {args.drain} s after the end")
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                stats.error("client crashed", repr(t.exception()))
        elapsed = time.monotonic() - t0
        pool_ok, settle_s, gauges = await wait_pool_empty(http, args.settle)

    finished = stats.completed + stats.cancelled
    summary = {
        "base_url": args.base_url,
        "clients": args.clients,
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 2),
        "requests_started": stats.started,
        "requests_completed": stats.completed,
        "requests_cancelled": stats.cancelled,
        "errors": stats.errors,
        "error_kinds": stats.error_kinds,
        "error_examples": stats.examples,
        "http_429": stats.status_429,
        "requests_per_s": round(finished / elapsed, 2) if elapsed > 0 else 0.0,
        "output_tokens": stats.output_tokens,
        "output_tokens_per_s": round(stats.output_tokens / elapsed, 1) if elapsed > 0 else 0.0,
        "ttft_samples": len(stats.ttft),
        "ttft_p50_ms": None if not stats.ttft else round(percentile(stats.ttft, 50) * 1000, 1),
        "ttft_p99_ms": None if not stats.ttft else round(percentile(stats.ttft, 99) * 1000, 1),
        "pool_returned_to_zero": pool_ok,
        "pool_settle_s": round(settle_s, 2),
        "final_gauges": {k: gauges.get(k) for k in GAUGES + ("dsv4_queue_depth", "dsv4_requests_in_flight")},
    }
    # The HTTP layer's own count of generations must come back too (abandoned streams included).
    leaked = (gauges.get("dsv4_requests_in_flight") or 0) - (before.get("dsv4_requests_in_flight") or 0)
    summary["requests_in_flight_leaked"] = leaked if pool_ok else None
    return summary


def print_table(s):
    rows = [
        ("clients x duration", f"{s['clients']} x {s['duration_s']} s (elapsed {s['elapsed_s']} s)"),
        ("requests started", s["requests_started"]),
        ("completed", s["requests_completed"]),
        ("cancelled (deliberate)", s["requests_cancelled"]),
        ("errors", f"{s['errors']} {s['error_kinds'] or ''}".strip()),
        ("requests/s", s["requests_per_s"]),
        ("output tokens/s", s["output_tokens_per_s"]),
        ("TTFT p50 / p99 (ms)", f"{s['ttft_p50_ms']} / {s['ttft_p99_ms']} ({s['ttft_samples']} samples)"),
        ("pool back to zero", f"{'yes' if s['pool_returned_to_zero'] else 'NO'} after {s['pool_settle_s']} s"),
        ("final gauges", ", ".join(f"{k.removeprefix('dsv4_')}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["final_gauges"].items())),
    ]
    w = max(len(k) for k, _ in rows)
    print("-" * (w + 40))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 40))
    if s.get("requests_in_flight_leaked"):
        print(f"  dsv4_requests_in_flight grew by {s['requests_in_flight_leaked']:g} over the run with nothing left running")
    for e in s["error_examples"]:
        print(f"  error example: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("DSV4_BASE_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--api-key", default=os.environ.get("DSV4_API_KEY"))
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds during which new requests start")
    ap.add_argument("--min-tokens", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--cancel-fraction", type=float, default=0.1)
    ap.add_argument("--drain", type=float, default=120.0, help="seconds in-flight requests get after --duration")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds the pool gets to return to zero")
    ap.add_argument("--read-timeout", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "load-test.json"))
    args = ap.parse_args()
    args.base_url = args.base_url.rstrip("/")
    host = urlsplit(args.base_url).hostname
    if host not in LOOPBACK:
        ap.error(f"--base-url must be on loopback (127.0.0.1), not {host!r}")
    if not (1 <= args.min_tokens <= args.max_tokens) or args.clients < 1 or args.duration <= 0:
        ap.error("need 1 <= --min-tokens <= --max-tokens, --clients >= 1, --duration > 0")

    summary = asyncio.run(run(args))
    print_table(summary)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    ok = summary["errors"] == 0 and summary["pool_returned_to_zero"] and summary["requests_completed"] > 0 and not summary.get("requests_in_flight_leaked")
    if not ok:
        print("load test FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
