"""`make bench`: the data step's core against the straightforward pandas approach, and the workflow's polling cost.

    python tools/bench.py [--sizes 10000000,40000000] [--only core|straightforward] [--skip-history]

1. Generates seeded CSVs (header `tranCode,Amount`, the distributions of offline/sample_data.py) once into
   .cache/bench/rows-N.csv; a rows-N.csv.json marker beside each says it is complete.
2. Runs each approach on each size in a fresh interpreter of its own, so that its peak RSS (VmHWM) is its own,
   and reports seconds of work (imports excluded), rows/s and peak RSS:
     straightforward  pandas.read_csv, sklearn train_test_split(test_size=0.2, random_state=42), two to_csv calls
     core             kmeans_pipeline.split.split_stream over 8 MiB pieces of the file, into two local files
3. Compares them with the goals (core: >= 5x the throughput, <= 25% of the peak RSS, peak RSS at the largest
   size within 10% of the smallest) and projects 100 M rows in one data-step Lambda (900 s, 3008 MB).
4. Runs one offline execution (offline/runner.py) and counts, from its Step Functions history, the state
   transitions and Lambda invocations in total, outside the poll loops and per poll round; then what a real run
   costs at the default poll interval, for assumed durations.

Prints everything, then exits 1 if a goal was missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
BLOCK_ROWS = 1_000_000
CHUNK_BYTES = 8 << 20
APPROACHES = ("straightforward", "core")
GOALS = {"throughput": 5.0, "memory": 0.25, "flat": 1.10}  # core/straightforward, core/straightforward, big/small
PROJECTED_ROWS = 100_000_000
# template.yaml's PrepareDataFunction: Timeout, MemorySize.
LAMBDA_SECONDS, LAMBDA_MB = 900, 3008
# One S3 stream each way, an assumption (not measured here) for the projection's I/O share.
ASSUMED_S3_MB_PER_S = 50
POLL_LOOPS = {  # loop -> (Wait, Task, Choice) states of statemachine/pipeline.asl.json
    "tuning": ("Wait for tuning", "Check tuning job", "Has tuning finished?"),
    "endpoint": ("Wait for endpoint", "Check endpoint", "Is the endpoint in service?"),
}
ASSUMED_MINUTES = {"tuning": 30, "endpoint": 8}  # a typical real run; assumptions, not measurements
HISTORY_INPUT = {"dataKey": "incoming/transactions.csv", "pollSeconds": 0, "maxTrainingJobs": 4,
                 "maxParallelTrainingJobs": 2, "k": 5}


# -- data -------------------------------------------------------------------------------------------------------
def format_rows(codes, cents) -> bytes:
    """`code,whole.cc\\n` lines for single-digit codes and non-negative amounts in cents, without a Python loop."""
    import numpy as np

    n, width = len(codes), 14  # code , 8 integer digits . 2 decimals \n
    whole, frac = cents // 100, cents % 100
    if n and whole.max() >= 10**8:
        raise ValueError("amounts must be below $100,000,000")
    text = np.empty((n, width), dtype=np.uint8)
    text[:, 0] = np.asarray(codes, dtype=np.uint8) + ord("0")
    text[:, 1], text[:, 10], text[:, 13] = ord(","), ord("."), ord("\n")
    for i in range(8):  # columns 2..9 hold the integer digits, right-aligned
        text[:, 9 - i] = (whole // 10**i) % 10 + ord("0")
    text[:, 11], text[:, 12] = frac // 10 + ord("0"), frac % 10 + ord("0")
    digits = 1 + sum((whole >= 10**p).astype(np.int64) for p in range(1, 8))
    keep = np.ones((n, width), dtype=bool)
    keep[:, 2:10] = np.arange(7, -1, -1)[None, :] < digits[:, None]  # drop the leading zeros
    return text[keep].tobytes()


def block(rng, rows: int) -> bytes:
    """`rows` transactions drawn as offline/sample_data.py draws them, anomalies included."""
    import numpy as np

    from offline.sample_data import ANOMALY_SHARE, LINES_OF_BUSINESS, SHARES, _amounts, _anomalous_amounts

    codes = rng.choice(np.array(list(LINES_OF_BUSINESS)), size=rows, p=SHARES)
    amounts = _amounts(codes, rng)
    odd = rng.choice(rows, size=max(1, int(rows * ANOMALY_SHARE)), replace=False)
    amounts[odd] = _anomalous_amounts(codes[odd], rng)
    return format_rows(codes, np.rint(np.clip(amounts, 0, None) * 100).astype(np.int64))


def dataset(rows: int, seed: int = 7) -> Path:
    """The cached CSV of `rows` rows, generated (in blocks, into a temporary name) when missing or incomplete."""
    import numpy as np

    path, marker = CACHE / f"rows-{rows}.csv", CACHE / f"rows-{rows}.csv.json"
    if path.exists() and marker.exists():
        meta = json.loads(marker.read_text())
        if meta == {"rows": rows, "bytes": path.stat().st_size, "seed": seed}:
            return path
    CACHE.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    rng, partial, started = np.random.default_rng(seed), path.with_suffix(".partial"), time.perf_counter()
    with partial.open("wb") as out:
        out.write(b"tranCode,Amount\n")
        for start in range(0, rows, BLOCK_ROWS):
            out.write(block(rng, min(BLOCK_ROWS, rows - start)))
    partial.replace(path)
    marker.write_text(json.dumps({"rows": rows, "bytes": path.stat().st_size, "seed": seed}))
    print(f"generated {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:,.0f} MB) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return path


# -- measurements (each in its own interpreter) -------------------------------------------------------------------
def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(status.read_text().split("VmHWM:")[1].split()[0])
    import resource  # macOS: bytes

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def child(approach: str, source: str, out: str) -> dict:
    sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT)]
    train_path, test_path = Path(out, "train.csv"), Path(out, "test.csv")
    if approach == "straightforward":
        import pandas as pd
        from sklearn.model_selection import train_test_split

        started = time.perf_counter()
        frame = pd.read_csv(source)
        train, test = train_test_split(frame, test_size=0.2, random_state=42)
        train.to_csv(train_path, index=False, header=False)
        test.to_csv(test_path, index=False, header=False)
        counts = len(train), len(test)
    else:
        from kmeans_pipeline.split import split_stream

        started = time.perf_counter()
        with open(source, "rb") as src, train_path.open("wb") as train, test_path.open("wb") as test:
            result = split_stream(iter(lambda: src.read(CHUNK_BYTES), b""), train, test)
        counts = result.train_rows, result.test_rows
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "train_rows": counts[0], "test_rows": counts[1], "peak_kb": peak_rss_kb(),
            "in_bytes": os.path.getsize(source), "out_bytes": train_path.stat().st_size + test_path.stat().st_size}


def measure(approach: str, path: Path, rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-") as out:
        proc = subprocess.run([sys.executable, __file__, "--child", approach, str(path), out],
                              capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{approach} on {path.name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["train_rows"] + result["test_rows"] != rows:
        raise SystemExit(f"{approach} on {path.name} wrote {result['train_rows'] + result['test_rows']} rows, not {rows}")
    return {**result, "rate": rows / result["seconds"], "peak_mb": result["peak_kb"] / 1024}


def goals(results: dict[int, dict[str, dict]]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, goal, met) for every goal the measured approaches allow."""
    rows = []
    for size, by in results.items():
        if set(APPROACHES) <= set(by):
            speed = by["core"]["rate"] / by["straightforward"]["rate"]
            memory = by["core"]["peak_mb"] / by["straightforward"]["peak_mb"]
            rows.append((f"throughput core/straightforward, {size:,} rows", f"{speed:.1f}x",
                         f">= {GOALS['throughput']:g}x", speed >= GOALS["throughput"]))
            rows.append((f"peak RSS core/straightforward, {size:,} rows", f"{memory:.0%}",
                         f"<= {GOALS['memory']:.0%}", memory <= GOALS["memory"]))
    cores = [(size, by["core"]) for size, by in sorted(results.items()) if "core" in by]
    if len(cores) > 1:
        (small, first), (big, last) = cores[0], cores[-1]
        flat = last["peak_mb"] / first["peak_mb"]
        rows.append((f"core peak RSS {big:,} / {small:,} rows", f"{flat:.2f}", f"<= {GOALS['flat']:.2f}",
                     flat <= GOALS["flat"]))
    return rows


def projection(cores: dict[int, dict]) -> list[tuple[str, str, str, bool]]:
    """100 M rows in one data-step Lambda, from the core's runs (size -> result): the largest run's rate and output
    bytes per row; peak RSS extended along the line through the smallest and largest runs (flat if it does not grow)."""
    (small, first), (big, last) = min(cores.items()), max(cores.items())
    seconds = PROJECTED_ROWS / last["rate"]
    growth = (last["peak_mb"] - first["peak_mb"]) / (big - small) if big > small else 0.0
    peak_mb = last["peak_mb"] + max(growth, 0.0) * (PROJECTED_ROWS - big)
    how = f"{last['peak_mb']:,.0f} MB at {big:,} rows" + (f", {first['peak_mb']:,.0f} at {small:,}" if big > small else "")
    in_mb = last["in_bytes"] / big * PROJECTED_ROWS / 1e6
    out_mb = last["out_bytes"] / big * PROJECTED_ROWS / 1e6
    # Reading and writing happen one after the other in the data step (no overlap): add both to the CPU time.
    io_seconds = (in_mb + out_mb) / ASSUMED_S3_MB_PER_S
    total = seconds + io_seconds
    return [
        ("time", f"{seconds:,.0f} s ({PROJECTED_ROWS:,} rows / {last['rate']:,.0f} rows/s)",
         f"<= {LAMBDA_SECONDS} s", seconds <= LAMBDA_SECONDS),
        ("time with S3", f"{total:,.0f} s ({in_mb:,.0f} MB read + {out_mb:,.0f} MB written at an assumed "
         f"{ASSUMED_S3_MB_PER_S} MB/s)", f"<= {LAMBDA_SECONDS} s", total <= LAMBDA_SECONDS),
        ("peak RSS", f"{peak_mb:,.0f} MB ({how}; plus two 8 MiB multipart buffers in the Lambda)",
         f"<= {LAMBDA_MB} MB", peak_mb + 16 <= LAMBDA_MB),
    ]


def print_checks(title: str, checks: list[tuple[str, str, str, bool]]) -> None:
    print(f"\n{title}")
    for what, measured, goal, met in checks:
        print(f"  {'PASS' if met else 'MISS'}  {what}: {measured} (goal {goal})")


# -- the workflow's history ---------------------------------------------------------------------------------------
def count_history(events: list[dict]) -> dict:
    """Transitions (states entered), Lambda invocations and history events, per state they happened in."""
    per_state: dict[str, dict[str, int]] = {}
    state = ""
    for event in events:
        details = event.get("stateEnteredEventDetails")
        if details:
            state = details["name"]
        counts = per_state.setdefault(state, {"transitions": 0, "lambdas": 0, "events": 0})
        counts["events"] += 1
        counts["transitions"] += bool(details)
        scheduled = event.get("taskScheduledEventDetails", {})
        counts["lambdas"] += event["type"] == "LambdaFunctionScheduled" or scheduled.get("resourceType") == "lambda"
    return per_state


def summarize(per_state: dict[str, dict[str, int]]) -> dict:
    total = {key: sum(c[key] for c in per_state.values()) for key in ("transitions", "lambdas", "events")}
    loops = {}
    for loop, states in POLL_LOOPS.items():
        inside = [per_state.get(s, {"transitions": 0, "lambdas": 0, "events": 0}) for s in states]
        loops[loop] = {key: sum(c[key] for c in inside) for key in total}
        loops[loop]["rounds"] = per_state.get(states[1], {}).get("transitions", 0)
    fixed = {key: total[key] - sum(loop[key] for loop in loops.values()) for key in total}
    return {"total": total, "fixed": fixed, "loops": loops}


def real_run(summary: dict, poll_seconds: int) -> tuple[int, int, int]:
    """(poll rounds, transitions, Lambda invocations) of a run with ASSUMED_MINUTES at `poll_seconds`."""
    rounds = transitions = lambdas = 0
    for loop, minutes in ASSUMED_MINUTES.items():
        measured = summary["loops"][loop]
        n = math.ceil(minutes * 60 / poll_seconds)  # the first check comes one interval after the loop starts
        rounds += n
        transitions += round(n * measured["transitions"] / measured["rounds"])
        lambdas += round(n * measured["lambdas"] / measured["rounds"])
    return rounds, summary["fixed"]["transitions"] + transitions, summary["fixed"]["lambdas"] + lambdas


def history() -> bool:
    """Runs and reports one offline execution; False if it did not succeed."""
    from kmeans_pipeline.models import EVENTS_PER_POLL_ROUND
    from kmeans_pipeline.settings import StackSettings
    from offline.runner import OfflineAWS
    from offline.sample_data import generate

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, OfflineAWS() as aws:
        sample = generate(Path(tmp), rows=6000, seed=11)
        aws.upload(sample.csv_path, HISTORY_INPUT["dataKey"])
        result = aws.run(HISTORY_INPUT, name="bench-history", timeout=300)
        sfn, events, token = aws.client("stepfunctions"), [], None
        while True:
            more = {"nextToken": token} if token else {}
            page = sfn.get_execution_history(executionArn=result.arn, maxResults=1000, **more)
            events += page["events"]
            if not (token := page.get("nextToken")):
                break
        handled = sum(aws.invocations.values())
    summary = summarize(count_history(events))
    print(f"\nOffline execution {result.name}: {result.status} in {result.seconds:.1f} s "
          f"({sample.rows:,} rows, input {json.dumps(HISTORY_INPUT)})")
    print(f"  {'':<28} {'transitions':>12} {'Lambda invocations':>19} {'history events':>15}")
    for label, c in (("whole execution", summary["total"]), ("outside the poll loops", summary["fixed"])):
        print(f"  {label:<28} {c['transitions']:>12} {c['lambdas']:>19} {c['events']:>15}")
    for loop, c in summary["loops"].items():
        n, label = max(c["rounds"], 1), f"{loop} loop, {c['rounds']} rounds"
        print(f"  {label:<28} {c['transitions']:>5} ({c['transitions'] / n:.1f}/round) {c['lambdas']:>8} "
              f"({c['lambdas'] / n:.1f}/round) {c['events']:>5} ({c['events'] / n:.1f}/round)")
    print(f"  (the offline runner handled {handled} Lambda invocations; models.py budgets {EVENTS_PER_POLL_ROUND} "
          f"history events per poll round)")
    if not all(c["rounds"] for c in summary["loops"].values()):
        print("  a poll loop did not run: no per-round figures for a real run")
        return False
    default = StackSettings.model_fields["default_poll_seconds"].default
    print(f"\nA real run, assuming tuning takes {ASSUMED_MINUTES['tuning']} min and the endpoint "
          f"{ASSUMED_MINUTES['endpoint']} min (assumptions, not measurements).\nA Standard workflow is billed per "
          "state transition, so the poll interval sets most of the bill:")
    print(f"  {'pollSeconds':>11} {'poll rounds':>12} {'transitions':>12} {'Lambda invocations':>19}")
    for poll in sorted({10, default, 300}):
        rounds, transitions, lambdas = real_run(summary, poll)
        note = "  (DefaultPollSeconds)" if poll == default else ""
        print(f"  {poll:>11} {rounds:>12} {transitions:>12} {lambdas:>19}{note}")
    return result.status == "SUCCEEDED"


# -- main ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000000,40000000", help="comma-separated row counts")
    parser.add_argument("--only", choices=APPROACHES, help="measure one approach only (no ratios)")
    parser.add_argument("--skip-history", action="store_true", help="skip the offline execution's history")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT)]
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    approaches = [args.only] if args.only else list(APPROACHES)
    took: dict[str, float] = {}
    results: dict[int, dict[str, dict]] = {}
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs; each measurement in a fresh interpreter.")
    for size in sizes:
        started = time.perf_counter()
        path = dataset(size)
        took[f"data {size:,}"] = time.perf_counter() - started
        print(f"\n{size:,} rows ({path.stat().st_size / 1e6:,.0f} MB)\n  {'approach':<16} {'seconds':>8} "
              f"{'rows/s':>12} {'peak RSS MB':>12}")
        for approach in approaches:
            started = time.perf_counter()
            result = results.setdefault(size, {})[approach] = measure(approach, path, size)
            took[f"{approach} {size:,}"] = time.perf_counter() - started
            print(f"  {approach:<16} {result['seconds']:>8.2f} {result['rate']:>12,.0f} "
                  f"{result['peak_mb']:>12,.0f}", flush=True)
    checks = goals(results)
    if checks:
        print_checks("Goals", checks)
    if "core" in approaches:
        plan = projection({size: by["core"] for size, by in results.items()})
        print_checks(f"{PROJECTED_ROWS:,} rows in one data-step Lambda ({LAMBDA_SECONDS} s, {LAMBDA_MB} MB), "
                     "projected from the core's runs", plan)
        print("  Assumes the Lambda runs split_stream as fast as one core of this machine (AWS documents one vCPU's\n"
              f"  worth of CPU at 1,769 MB, so about 1.7 at {LAMBDA_MB} MB; split_stream uses one). The S3 rate is an\n"
              "  assumption: the channels stream to S3 in multipart uploads (nothing is staged in /tmp).")
        checks += plan
    if not args.skip_history:
        started = time.perf_counter()
        checks.append(("offline execution", "", "", history()))
        took["history"] = time.perf_counter() - started
    print("\nParts took: " + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in took.items()))
    missed = [what for what, _, _, met in checks if not met]
    if missed:
        print("Missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
