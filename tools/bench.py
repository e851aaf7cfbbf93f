"""`make bench`: the data step's core against the tools a user would pick instead, and the workflow's polling cost.

    python tools/bench.py [--sizes 10000000,40000000] [--files numeric2,numeric8,text] [--only core,polars]
                          [--skip-history]

1. Generates three seeded CSVs per size once into .cache/bench/ (a .json marker beside each says it is complete):
     numeric2  `tranCode,Amount` (the distributions of offline/sample_data.py)
     numeric8  those two and six more numeric columns (integers, negative and long decimals)
     text      a text id, an ISO date, tranCode, Amount, a quoted merchant name with commas (and doubled quotes)
   The features are the numeric columns; the text file's other columns are carried by nobody but read by all.
2. Runs each tool on each file in a fresh interpreter of its own, so that its peak RSS (VmHWM) is its own, and
   reports seconds of work (imports excluded), rows/s, MB/s of input and peak RSS:
     core     kmeans_pipeline.data.split.split_stream over 8 MiB pieces of the file into two local files (2 workers)
     polars   lazy scan_csv (features as Float64) -> a seeded hash of the row index -> filter -> two sink_csv,
              collected together, POLARS_MAX_THREADS=2
     duckdb   COPY (SELECT features, hash-of-values test flag FROM read_csv(types DOUBLE)) TO ... PARTITION_BY,
              threads=2
     seed     pandas.read_csv, sklearn train_test_split(test_size=0.2, random_state=42), two to_csv calls
     copy     the file read in 8 MiB pieces, each written to one of two files: the physical limit here
   On request only (--only), the prototypes of tools/experiment_readers.py: pyarrow, arro3, polars_blocks
   (issue 11's library study); BENCH_PYTHON_<TOOL> runs one tool in another interpreter.
   and whether each tool validates values: the same tool run on a small file with 'abc' in a feature column
   mid-file must fail.
3. Compares them with the goals (core: >= polars rows/s, >= 10x seed rows/s, <= 25% of polars's peak RSS, and
   peak RSS at the largest size within 10% of the smallest) and projects 100 M rows in one data-step Lambda.
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
APPROACHES = ("core", "polars", "duckdb", "seed", "copy")
# Prototypes measured on request (--only), never by default: tools/experiment_readers.py (issue 11's library study;
# they need `pip install pyarrow arro3-core arro3-io`, which no extra installs). BENCH_PYTHON_<TOOL> names another
# interpreter for one tool (polars_blocks was measured with Polars 1.20, the newest that fits the data step's budget,
# while the polars anchor stays on the bench extra's version).
EXPERIMENTS = ("pyarrow", "arro3", "polars_blocks")
FILES = ("numeric2", "numeric8", "text")
FEATURES = {
    "numeric2": ["tranCode", "Amount"],
    "numeric8": ["tranCode", "Amount", "hour", "items", "lat", "lon", "score", "balance"],
    "text": ["tranCode", "Amount"],
}
THREADS = 2
# core/polars rows/s, core/seed rows/s, core/polars peak RSS, core's peak RSS at the largest / smallest size
GOALS = {"polars": 1.0, "seed": 10.0, "memory": 0.25, "flat": 1.10}
PROJECTED_ROWS = 100_000_000
# template.yaml's SplitRangeFunction (one worker of the data step): Timeout, MemorySize.
LAMBDA_SECONDS, LAMBDA_MB = 900, 3008
# One S3 stream each way, an assumption (not measured here) for the projection's I/O share.
ASSUMED_S3_MB_PER_S = 50
POLL_LOOPS = {  # loop -> (Wait, Task, Choice) states of statemachine/pipeline.asl.json
    "tuning": ("Wait for tuning", "Check tuning job", "Has tuning finished?"),
    "endpoint": ("Wait for endpoint", "Check endpoint", "Is the endpoint in service?"),
}
ASSUMED_MINUTES = {"tuning": 30, "endpoint": 8}  # a typical real run; assumptions, not measurements
HISTORY_INPUT = {
    "dataKey": "incoming/transactions.csv",
    "pollSeconds": 0,
    "maxTrainingJobs": 4,
    "maxParallelTrainingJobs": 2,
    "k": 5,
}


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


def number_column(ints, decimals: int = 0):
    """Plain fixed-point text of ints / 10**decimals ('-' for negatives, no leading zeros) as (chars, keep)."""
    import numpy as np

    ints = np.asarray(ints, dtype=np.int64)
    n, negative, magnitude = len(ints), ints < 0, np.abs(ints)
    whole, frac = magnitude // 10**decimals, magnitude % 10**decimals
    digits = max(1, len(str(int(whole.max())))) if n else 1
    width = 1 + digits + (1 + decimals if decimals else 0)
    chars, keep = np.zeros((n, width), dtype=np.uint8), np.ones((n, width), dtype=bool)
    chars[:, 0], keep[:, 0] = ord("-"), negative
    for i in range(digits):
        chars[:, digits - i] = (whole // 10**i) % 10 + ord("0")
    used = np.ones(n, dtype=np.int64) + sum((whole >= 10**p).astype(np.int64) for p in range(1, digits))
    keep[:, 1 : digits + 1] = np.arange(digits - 1, -1, -1)[None, :] < used[:, None]
    if decimals:
        chars[:, digits + 1] = ord(".")
        for j in range(decimals):
            chars[:, digits + 2 + j] = (frac // 10 ** (decimals - 1 - j)) % 10 + ord("0")
    return chars, keep


def text_column(options: list[bytes], index):
    """The options[index] texts as (chars, keep)."""
    import numpy as np

    width = max(map(len, options))
    table = np.zeros((len(options), width), dtype=np.uint8)
    for i, option in enumerate(options):
        table[i, : len(option)] = np.frombuffer(option, dtype=np.uint8)
    lengths = np.array([len(o) for o in options])
    return table[index], np.arange(width)[None, :] < lengths[index][:, None]


def join_columns(columns) -> bytes:
    """CSV lines from (chars, keep) columns: comma-separated, one line per row."""
    import numpy as np

    n = len(columns[0][0])
    pieces, keeps = [], []
    for number, (chars, keep) in enumerate(columns):
        pieces.append(chars)
        keeps.append(keep)
        sep = np.full((n, 1), ord("\n") if number == len(columns) - 1 else ord(","), dtype=np.uint8)
        pieces.append(sep)
        keeps.append(np.ones((n, 1), dtype=bool))
    return np.hstack(pieces)[np.hstack(keeps)].tobytes()


MERCHANTS = [
    b'"Acme, Inc."',
    b'"Joe""s Diner, LLC"',
    b'"Corner Shop"',
    b'"Fuel & Go, Station 12"',
    b'"Books, Maps, and More"',
    b"Grocer",
    b'"Pharmacy, 24h"',
    b'"Caf\xc3\xa9 Nord, Ltd."',
]
HEADERS = {
    "numeric2": b"tranCode,Amount\n",
    "numeric8": b"tranCode,Amount,hour,items,lat,lon,score,balance\n",
    "text": b"txnId,date,tranCode,Amount,merchant\n",
}


def file_block(kind: str, rng, rows: int, first_row: int) -> bytes:
    """`rows` rows of one bench file, the transactions drawn as offline/sample_data.py draws them."""
    import numpy as np

    base = block(rng, rows)
    if kind == "numeric2":
        return base
    lines = np.frombuffer(base, dtype=np.uint8)
    codes = lines[np.r_[0, np.flatnonzero(lines == ord("\n"))[:-1] + 1]] - ord("0")
    cents = np.rint(np.fromstring(base.replace(b"\n", b","), sep=",").reshape(-1, 2)[:, 1] * 100).astype(np.int64)
    code, amount = number_column(codes), number_column(cents, 2)
    if kind == "numeric8":
        return join_columns(
            [
                code,
                amount,
                number_column(rng.integers(0, 24, rows)),
                number_column(rng.integers(1, 21, rows)),
                number_column(rng.integers(-900_000, 900_001, rows), 4),
                number_column(rng.integers(-1_800_000, 1_800_001, rows), 4),
                number_column(rng.integers(0, 1001, rows), 3),
                number_column(rng.integers(-5_000_000, 50_000_000_000, rows), 2),
            ]
        )
    ids = number_column(first_row + np.arange(rows) + 10**11)  # 12 digits
    ids = (
        np.hstack([np.full((rows, 1), ord("T"), dtype=np.uint8), ids[0]]),
        np.hstack([np.ones((rows, 1), dtype=bool), ids[1]]),
    )
    days = np.datetime64("2026-01-01") + rng.integers(0, 334, rows).astype("timedelta64[D]")
    dates = (
        np.frombuffer(np.datetime_as_string(days).astype("S10").tobytes(), dtype=np.uint8).reshape(rows, 10),
        np.ones((rows, 10), dtype=bool),
    )
    return join_columns([ids, dates, code, amount, text_column(MERCHANTS, rng.integers(0, len(MERCHANTS), rows))])


def dataset(rows: int, kind: str = "numeric2", seed: int = 7) -> Path:
    """The cached CSV of `rows` rows of one kind, generated (in blocks, into a temporary name) when missing."""
    import numpy as np

    name = f"rows-{rows}.csv" if kind == "numeric2" else f"{kind}-{rows}.csv"
    path, marker = CACHE / name, CACHE / f"{name}.json"
    if path.exists() and marker.exists():
        meta = json.loads(marker.read_text())
        if meta == {"rows": rows, "bytes": path.stat().st_size, "seed": seed}:
            return path
    CACHE.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    rng, partial, started = np.random.default_rng(seed), path.with_suffix(".partial"), time.perf_counter()
    with partial.open("wb") as out:
        out.write(HEADERS[kind])
        for start in range(0, rows, BLOCK_ROWS):
            out.write(file_block(kind, rng, min(BLOCK_ROWS, rows - start), start))
    partial.replace(path)
    marker.write_text(json.dumps({"rows": rows, "bytes": path.stat().st_size, "seed": seed}))
    print(
        f"generated {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:,.0f} MB) in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return path


def bad_file(kind: str, directory: Path, rows: int = 20_000) -> Path:
    """A small file of one kind with a value that is no number ('abc') in a feature column mid-file."""
    import numpy as np

    text = HEADERS[kind] + file_block(kind, np.random.default_rng(3), rows, 0)
    lines = text.split(b"\n")
    middle = rows // 2
    fields = lines[middle].split(b",")
    position = HEADERS[kind].decode().strip().split(",").index("Amount")
    fields[position] = b"abc"
    lines[middle] = b",".join(fields)
    path = directory / f"bad-{kind}.csv"
    path.write_bytes(b"\n".join(lines))
    return path


# -- measurements (each in its own interpreter) -------------------------------------------------------------------
def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        return int(status.read_text().split("VmHWM:")[1].split()[0])
    import resource  # macOS: bytes

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(CHUNK_BYTES), b""))


def child(approach: str, source: str, out: str, features: list[str]) -> dict:
    sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT), str(ROOT / "tools")]
    train_path, test_path = Path(out, "train.csv"), Path(out, "test.csv")
    counts = None
    if approach == "seed":
        import pandas as pd
        from sklearn.model_selection import train_test_split

        started = time.perf_counter()
        frame = pd.read_csv(source)
        train, test = train_test_split(frame, test_size=0.2, random_state=42)
        train[features].to_csv(train_path, index=False, header=False)
        test[features].to_csv(test_path, index=False, header=False)
        counts = len(train), len(test)
    elif approach == "polars":
        import polars as pl

        started = time.perf_counter()
        frame = (
            pl.scan_csv(source, schema_overrides={name: pl.Float64 for name in features})
            .select(features)
            .with_row_index("row")
            .with_columns(test=pl.col("row").hash(42) % 5 == 0)
        )
        pl.collect_all(
            [
                frame.filter(~pl.col("test")).select(features).sink_csv(train_path, include_header=False, lazy=True),
                frame.filter(pl.col("test")).select(features).sink_csv(test_path, include_header=False, lazy=True),
            ]
        )
    elif approach == "duckdb":
        import duckdb

        started = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"SET threads = {THREADS}")
        names = ", ".join(f'"{name}"' for name in features)
        types = ", ".join(f"'{name}': 'DOUBLE'" for name in features)
        con.execute(
            f"COPY (SELECT {names}, hash({names}) % 5 = 0 AS test FROM read_csv('{source}', "
            f"types = {{{types}}})) TO '{out}/parts' (FORMAT csv, HEADER false, PARTITION_BY (test))"
        )
        con.close()
        parts = {flag: list(Path(out, "parts", f"test={flag}").glob("*.csv")) for flag in ("false", "true")}
        seconds = time.perf_counter() - started
        counts = tuple(sum(count_lines(p) for p in parts[flag]) for flag in ("false", "true"))
        out_bytes = sum(p.stat().st_size for flag in parts for p in parts[flag])
        return {
            "seconds": seconds,
            "train_rows": counts[0],
            "test_rows": counts[1],
            "peak_kb": peak_rss_kb(),
            "in_bytes": os.path.getsize(source),
            "out_bytes": out_bytes,
        }
    elif approach in EXPERIMENTS:
        import experiment_readers

        if approach == "pyarrow":
            import pyarrow.csv  # noqa: F401
        elif approach == "arro3":
            import arro3.io  # noqa: F401
        else:
            import polars  # noqa: F401
        started = time.perf_counter()
        result = experiment_readers.run(approach, source, str(train_path), str(test_path), features)
        counts = result.train_rows, result.test_rows
    elif approach == "copy":
        started = time.perf_counter()
        with open(source, "rb") as src, train_path.open("wb") as train, test_path.open("wb") as test:
            for number, piece in enumerate(iter(lambda: src.read(CHUNK_BYTES), b"")):
                (test if number % 5 == 4 else train).write(piece)
    else:
        from kmeans_pipeline.data.split import split_stream

        started = time.perf_counter()
        with open(source, "rb") as src, train_path.open("wb") as train, test_path.open("wb") as test:
            result = split_stream(
                iter(lambda: src.read(CHUNK_BYTES), b""), train, test, feature_columns=features, workers=THREADS
            )
        counts = result.train_rows, result.test_rows
    seconds = time.perf_counter() - started
    if counts is None:  # outside the timing
        counts = count_lines(train_path), count_lines(test_path)
        if approach == "copy":
            counts = (counts[0] + counts[1] - 1, 0)  # the header line, copied too
    return {
        "seconds": seconds,
        "train_rows": counts[0],
        "test_rows": counts[1],
        "peak_kb": peak_rss_kb(),
        "in_bytes": os.path.getsize(source),
        "out_bytes": train_path.stat().st_size + test_path.stat().st_size,
    }


def run_child(approach: str, path: Path, features: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "POLARS_MAX_THREADS": str(THREADS)}
    with tempfile.TemporaryDirectory(prefix="bench-") as out:
        python = os.environ.get(f"BENCH_PYTHON_{approach.upper()}", sys.executable)
        return subprocess.run(
            [python, __file__, "--child", approach, str(path), out, ",".join(features)],
            capture_output=True,
            text=True,
            env=env,
        )


def measure(approach: str, path: Path, rows: int, features: list[str]) -> dict:
    proc = run_child(approach, path, features)
    if proc.returncode:
        raise SystemExit(f"{approach} on {path.name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["train_rows"] + result["test_rows"] != rows:
        raise SystemExit(
            f"{approach} on {path.name} wrote {result['train_rows'] + result['test_rows']} rows, not {rows}"
        )
    return {
        **result,
        "rate": rows / result["seconds"],
        "peak_mb": result["peak_kb"] / 1024,
        "mb_s": result["in_bytes"] / 1e6 / result["seconds"],
    }


def validates(approach: str, kind: str, directory: Path) -> bool:
    """Whether the tool, run as measured, fails on a file with 'abc' in a feature column mid-file."""
    return run_child(approach, bad_file(kind, directory), FEATURES[kind]).returncode != 0


def goals(results: dict[str, dict[int, dict[str, dict]]]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, goal, met) for every goal the measured tools allow; results[file][size][tool]."""
    rows = []
    for kind, sizes in results.items():
        for size, by in sizes.items():
            core = by.get("core")
            if core is None:
                continue
            where = f"{kind}, {size:,} rows"
            if "polars" in by:
                speed = core["rate"] / by["polars"]["rate"]
                memory = core["peak_mb"] / by["polars"]["peak_mb"]
                rows.append(
                    (
                        f"rows/s core/polars, {where}",
                        f"{speed:.2f}x",
                        f">= {GOALS['polars']:g}x",
                        speed >= GOALS["polars"],
                    )
                )
                rows.append(
                    (
                        f"peak RSS core/polars, {where}",
                        f"{memory:.0%}",
                        f"<= {GOALS['memory']:.0%}",
                        memory <= GOALS["memory"],
                    )
                )
            if "seed" in by:
                speed = core["rate"] / by["seed"]["rate"]
                rows.append(
                    (f"rows/s core/seed, {where}", f"{speed:.1f}x", f">= {GOALS['seed']:g}x", speed >= GOALS["seed"])
                )
        cores = [(size, by["core"]) for size, by in sorted(sizes.items()) if "core" in by]
        if len(cores) > 1:
            (small, first), (big, last) = cores[0], cores[-1]
            flat = last["peak_mb"] / first["peak_mb"]
            rows.append(
                (
                    f"core peak RSS {big:,} / {small:,} rows, {kind}",
                    f"{flat:.2f}",
                    f"<= {GOALS['flat']:.2f}",
                    flat <= GOALS["flat"],
                )
            )
    return rows


def projection(cores: dict[int, dict]) -> list[tuple[str, str, str, bool]]:
    """100 M rows in one data-step Lambda, from the core's runs (size -> result): the largest run's rate and output
    bytes per row; peak RSS extended along the line through the smallest and largest runs (flat if it does not grow)."""
    (small, first), (big, last) = min(cores.items()), max(cores.items())
    seconds = PROJECTED_ROWS / last["rate"]
    growth = (last["peak_mb"] - first["peak_mb"]) / (big - small) if big > small else 0.0
    peak_mb = last["peak_mb"] + max(growth, 0.0) * (PROJECTED_ROWS - big)
    how = f"{last['peak_mb']:,.0f} MB at {big:,} rows" + (
        f", {first['peak_mb']:,.0f} at {small:,}" if big > small else ""
    )
    in_mb = last["in_bytes"] / big * PROJECTED_ROWS / 1e6
    out_mb = last["out_bytes"] / big * PROJECTED_ROWS / 1e6
    # Reading and parsing overlap in the data step, but count them one after the other: a safe upper bound.
    io_seconds = (in_mb + out_mb) / ASSUMED_S3_MB_PER_S
    total = seconds + io_seconds
    return [
        (
            "time",
            f"{seconds:,.0f} s ({PROJECTED_ROWS:,} rows / {last['rate']:,.0f} rows/s)",
            f"<= {LAMBDA_SECONDS} s",
            seconds <= LAMBDA_SECONDS,
        ),
        (
            "time with S3",
            f"{total:,.0f} s ({in_mb:,.0f} MB read + {out_mb:,.0f} MB written at an assumed "
            f"{ASSUMED_S3_MB_PER_S} MB/s)",
            f"<= {LAMBDA_SECONDS} s",
            total <= LAMBDA_SECONDS,
        ),
        (
            "peak RSS",
            f"{peak_mb:,.0f} MB ({how}; plus two 8 MiB multipart buffers in the Lambda)",
            f"<= {LAMBDA_MB} MB",
            peak_mb + 16 <= LAMBDA_MB,
        ),
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
    from kmeans_pipeline.schemas.run import EVENTS_PER_POLL_ROUND
    from kmeans_pipeline.schemas.settings import StackSettings
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
    print(
        f"\nOffline execution {result.name}: {result.status} in {result.seconds:.1f} s "
        f"({sample.rows:,} rows, input {json.dumps(HISTORY_INPUT)})"
    )
    print(f"  {'':<28} {'transitions':>12} {'Lambda invocations':>19} {'history events':>15}")
    for label, c in (("whole execution", summary["total"]), ("outside the poll loops", summary["fixed"])):
        print(f"  {label:<28} {c['transitions']:>12} {c['lambdas']:>19} {c['events']:>15}")
    for loop, c in summary["loops"].items():
        n, label = max(c["rounds"], 1), f"{loop} loop, {c['rounds']} rounds"
        print(
            f"  {label:<28} {c['transitions']:>5} ({c['transitions'] / n:.1f}/round) {c['lambdas']:>8} "
            f"({c['lambdas'] / n:.1f}/round) {c['events']:>5} ({c['events'] / n:.1f}/round)"
        )
    print(
        f"  (the offline runner handled {handled} Lambda invocations; schemas/run.py budgets {EVENTS_PER_POLL_ROUND} "
        f"history events per poll round)"
    )
    if not all(c["rounds"] for c in summary["loops"].values()):
        print("  a poll loop did not run: no per-round figures for a real run")
        return False
    default = StackSettings.model_fields["default_poll_seconds"].default
    print(
        f"\nA real run, assuming tuning takes {ASSUMED_MINUTES['tuning']} min and the endpoint "
        f"{ASSUMED_MINUTES['endpoint']} min (assumptions, not measurements).\nA Standard workflow is billed per "
        "state transition, so the poll interval sets most of the bill:"
    )
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
    parser.add_argument("--files", default=",".join(FILES), help=f"comma-separated, of {', '.join(FILES)}")
    parser.add_argument(
        "--only",
        help=f"comma-separated tools, of {', '.join(APPROACHES)} (and the prototypes {', '.join(EXPERIMENTS)})",
    )
    parser.add_argument("--skip-history", action="store_true", help="skip the offline execution's history")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        approach, source, out, features = args.child
        print(json.dumps(child(approach, source, out, features.split(","))))
        return 0
    sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT)]
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    kinds = [kind for kind in args.files.split(",") if kind]
    approaches = [a for a in (args.only or ",".join(APPROACHES)).split(",") if a]
    unknown = sorted(set(kinds) - set(FILES)) + sorted(set(approaches) - set(APPROACHES) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    width = max(8, *map(len, approaches))
    took: dict[str, float] = {}
    results: dict[str, dict[int, dict[str, dict]]] = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs (load average {load:.2f} at the start); "
        f"each measurement in a fresh interpreter; {THREADS} threads for every tool but seed and copy."
    )
    with tempfile.TemporaryDirectory(prefix="bench-bad-") as tmp:
        checked = {a: {kind: validates(a, kind, Path(tmp)) for kind in kinds} for a in approaches if a != "copy"}
    print(
        "Validates values ('abc' in a feature column mid-file fails the run): "
        + ", ".join(
            f"{a} {'yes' if all(v.values()) else 'no' if not any(v.values()) else 'partly'}" for a, v in checked.items()
        )
    )
    for kind in kinds:
        for size in sizes:
            started = time.perf_counter()
            path = dataset(size, kind)
            took[f"data {kind} {size:,}"] = time.perf_counter() - started
            print(
                f"\n{kind}, {size:,} rows ({path.stat().st_size / 1e6:,.0f} MB; features {', '.join(FEATURES[kind])})"
                f"\n  {'tool':<{width}} {'seconds':>8} {'rows/s':>12} {'MB/s':>8} {'peak RSS MB':>12} "
                f"{'x copy time':>12} {'validates':>10}",
                flush=True,
            )
            by = results.setdefault(kind, {}).setdefault(size, {})
            for approach in ("copy", *[a for a in approaches if a != "copy"]):
                if approach not in approaches:
                    continue
                started = time.perf_counter()
                result = by[approach] = measure(approach, path, size, FEATURES[kind])
                took[f"{approach} {kind} {size:,}"] = time.perf_counter() - started
                ratio = f"{result['seconds'] / by['copy']['seconds']:.1f}" if "copy" in by else "-"
                valid = "-" if approach == "copy" else "yes" if checked[approach][kind] else "no"
                print(
                    f"  {approach:<{width}} {result['seconds']:>8.2f} {result['rate']:>12,.0f} {result['mb_s']:>8,.0f} "
                    f"{result['peak_mb']:>12,.0f} {ratio:>12} {valid:>10}",
                    flush=True,
                )
    checks = goals(results)
    if checks:
        print_checks("Goals", checks)
    cores = {size: by["core"] for size, by in results.get("numeric2", {}).items() if "core" in by}
    if cores:
        plan = projection(cores)
        print_checks(
            f"{PROJECTED_ROWS:,} rows (numeric2) in one data-step Lambda ({LAMBDA_SECONDS} s, {LAMBDA_MB} MB), "
            "projected from the core's runs",
            plan,
        )
        print(
            f"  Assumes the Lambda runs split_stream as fast as {THREADS} cores of this machine (AWS documents one "
            f"vCPU's\n  worth of CPU at 1,769 MB, so about 1.7 at {LAMBDA_MB} MB). The S3 rate is an assumption: "
            "the channels\n  stream to S3 in multipart uploads (nothing is staged in /tmp)."
        )
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
