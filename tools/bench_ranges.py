"""`make bench-ranges`: the data step's worker (one range of `split_range`) on this machine, against the single data
step it replaces, and what that projects for 10 GB and 50 GB on the Distributed Map.

    python tools/bench_ranges.py [--rows 4000000] [--files numeric2,text] [--workers 40] [--repeat 3]

1. Generates (once, into .cache/bench/, as `make bench` does) the numeric2 and text bench files.
2. In a fresh interpreter each (so that its peak RSS, VmHWM, is its own), over the whole file, the variants in turn
   and the rounds one after the other (so that the load of a shared machine falls on all of them), best of --repeat:
     range    kmeans_pipeline.steps.split_range on one range covering the file, reading and writing through a local
              stand-in for S3 (ranged GETs of the file; puts counted and dropped): the worker's whole job, with the
              quote readings, the windows' draws, the statistics and the sample
     stream   this branch's data.split.split_stream with the treatments' learner on the training rows (local
              writers that drop the bytes)
     before   the same with the code before the data step was cut into ranges (`git archive b59d1a6 layers/shared`,
              the last commit of main before it): the single data step's core, the rate and memory one range is held to
3. Prints MB/s of input, peak RSS and its growth over the RSS after the imports (the range worker imports botocore,
   pydantic and the schemas, the cores numpy alone) for each, the load average, then the projection: a range of
   RangeKilobytes at the slowest worker rate measured (or the S3 throughput assumed per worker, if lower), ranges /
   workers rounds, and the Lambda cost (GB-seconds of 3008 MB arm64 workers; requests; Step Functions transitions
   of the Map's child executions).

Assumptions (printed): a Lambda worker of 3008 MB (about 1.7 vCPU) runs as fast as this machine's two cores; S3
gives one worker at least 85 MB/s (AWS: "Make one concurrent request for each 85-90 MB/s of desired network
throughput", Best Practices Design Patterns: Optimizing Amazon S3 Performance; the worker keeps 2 ranged GETs of
4 MiB in flight, so this is the floor of one connection); prices of us-east-1 (arm64 $0.0000133334 per GB-s,
$0.20 per million requests, standard workflows $0.025 per 1,000 state transitions).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from bench import CACHE, FEATURES, dataset  # noqa: E402

S3_MB_PER_S = 85.0
LAMBDA_GB = 3008 / 1024
LAMBDA_TIMEOUT_S = 900
PRICE_GB_S = 0.0000133334
PRICE_REQUEST = 0.20 / 1e6
PRICE_TRANSITION = 0.025 / 1000
TRANSITIONS_PER_CHILD = 4  # a child execution: started, task scheduled/started/succeeded, succeeded (about 4 billed)


class LocalS3:
    """Just what split_range asks of S3, on a local file: ranged GETs; puts and multipart uploads counted, dropped."""

    def __init__(self, path: Path) -> None:
        self.path, self.written = path, 0

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **_: object) -> dict:  # noqa: N803
        with self.path.open("rb") as f:
            if Range is None:
                return {"Body": io.BytesIO(f.read())}
            first, last = (int(v) for v in Range.removeprefix("bytes=").split("-"))
            f.seek(first)
            return {"Body": io.BytesIO(f.read(last - first + 1))}

    def put_object(self, Body: bytes = b"", **_: object) -> dict:  # noqa: N803
        self.written += len(Body)
        return {}

    def create_multipart_upload(self, **_: object) -> dict:
        return {"UploadId": "local"}

    def upload_part(self, Body: bytes = b"", **_: object) -> dict:  # noqa: N803
        self.written += len(Body)
        return {"ETag": '"local"'}

    def complete_multipart_upload(self, **_: object) -> dict:
        return {}

    def abort_multipart_upload(self, **_: object) -> dict:
        return {}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


class Drop:
    def write(self, data: bytes) -> None:
        pass


def child(tool: str, path: Path, kind: str) -> dict:
    features = FEATURES[kind]
    if tool in ("stream", "before"):
        from kmeans_pipeline.data.split import split_stream
        from kmeans_pipeline.data.treatment import TreatmentLearner

        learner = TreatmentLearner(seed=42)  # as the data step learns the treatments' statistics in the same pass
        source = path.open("rb")
        chunks = iter(lambda: source.read(8 << 20), b"")

        def on_train(text: bytes, keys: object = None) -> None:
            if tool == "before":  # its split_stream gives the text alone, its learner draws the keys
                learner.add_text(text, train=True)
            else:
                learner.add_text(text, train=True, keys=keys)

        start_mb = rss_mb()
        started = time.perf_counter()
        result = split_stream(chunks, Drop(), Drop(), feature_columns=features, workers=2, on_train=on_train)
        rows = result.train_rows + result.test_rows
    else:
        from kmeans_pipeline.schemas.dataset import SourceObject
        from kmeans_pipeline.schemas.ranges import RangeItem
        from kmeans_pipeline.schemas.run import RunConfig
        from kmeans_pipeline.schemas.settings import StackSettings
        from kmeans_pipeline.steps.split_range import split_range

        size = path.stat().st_size
        source = SourceObject(bucket="bench", key=path.name, etag='"bench"', size=size)
        settings = StackSettings(
            name_prefix="bench",
            endpoint_name="bench",
            data_bucket="bench",
            kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/bench",
            sagemaker_role_arn="arn:aws:iam::123456789012:role/bench",
            kmeans_image_uri="1.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        )
        config = RunConfig.model_validate(json.loads((ROOT / "events" / "split_range.json").read_text())["config"])
        config = config.model_copy(update={"feature_columns": features, "stratify_column": None, "treatments": {}})
        s3 = LocalS3(path)
        start_mb = rss_mb()
        started = time.perf_counter()
        summary = split_range(config, settings, s3, RangeItem(index=0, part=0, source=source, start=0, end=size))
        rows = summary["rows"]
        assert not summary["problem"]
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": rows,
        "bytes": path.stat().st_size,
        "peak_mb": peak_rss_mb(),
        "start_mb": start_mb,
    }


BEFORE = "b59d1a6bf163b06f3c0cfee69c8fd66731280b75"  # main's last commit before the range-based data step


def before_layer() -> Path:
    """The layer before ranges (BEFORE: the single data step), unpacked once into .cache/bench/before-ranges."""
    target = CACHE / "before-ranges"
    stamp = target / ".commit"
    if stamp.exists() and stamp.read_text() == BEFORE:
        return target / "layers" / "shared"
    archive = subprocess.run(["git", "archive", BEFORE, "layers/shared"], cwd=ROOT, capture_output=True, check=True)
    target.mkdir(parents=True, exist_ok=True)
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(target, filter="data")
    stamp.write_text(BEFORE)
    return target / "layers" / "shared"


def run(tool: str, path: Path, kind: str) -> dict:
    layer = before_layer() if tool == "before" else ROOT / "layers" / "shared"
    env = {**os.environ, "PYTHONPATH": f"{layer}{os.pathsep}{ROOT}"}
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); import bench_ranges as b; " + (
        f"print(json.dumps(b.child({tool!r}, b.Path({str(path)!r}), {kind!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{tool} on {path.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--files", default="numeric2,text")
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--range-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every variant; the best of each is shown")
    args = parser.parse_args()
    tools = ("range", "stream", "before")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f} at the start, {os.cpu_count()} cores; "
        f"before = {BEFORE[:7]}, the single data step before ranges"
    )
    rates = {}
    for kind in args.files.split(","):
        path = dataset(args.rows, kind)
        size_mb = path.stat().st_size / 1e6
        runs: dict[str, list[dict]] = {tool: [] for tool in tools}
        for _ in range(args.repeat):
            for tool in tools:
                runs[tool].append(run(tool, path, kind))
        print(f"\n{kind}: {args.rows:,} rows, {size_mb:,.0f} MB ({path}), load average {os.getloadavg()[0]:.2f} after")
        for tool in tools:
            best = min(runs[tool], key=lambda r: r["seconds"])
            rate = best["bytes"] / best["seconds"] / 1e6
            rates[(kind, tool)] = rate
            print(
                f"  {tool:7s} {best['seconds']:6.2f} s  {rate:6.1f} MB/s (runs: "
                + ", ".join(f"{r['bytes'] / r['seconds'] / 1e6:.1f}" for r in runs[tool])
                + f")  peak RSS {max(r['peak_mb'] for r in runs[tool]):4.0f} MB, "
                f"{max(r['peak_mb'] - r['start_mb'] for r in runs[tool]):4.0f} MB over its imports' "
                f"{best['start_mb']:.0f} MB"
            )
        ratio = rates[(kind, "range")] / rates[(kind, "before")]
        print(f"  one range / the single data step's core before ranges: {ratio:.2f}x the rate")
    slowest = min(rate for (_, tool), rate in rates.items() if tool == "range")
    worker = min(slowest, S3_MB_PER_S)
    range_bytes = args.range_mib << 20
    range_s = range_bytes / 1e6 / worker
    print(
        f"\nProjection: ranges of {args.range_mib} MiB at {worker:.0f} MB/s per worker (the slowest range rate "
        f"measured, {slowest:.0f} MB/s, or S3's assumed {S3_MB_PER_S:.0f} MB/s if lower): {range_s:.0f} s a range "
        f"(the function's timeout is {LAMBDA_TIMEOUT_S} s: {LAMBDA_TIMEOUT_S / range_s:.1f}x margin), "
        f"{args.workers} workers at once"
    )
    for gigabytes in (10, 50):
        total = gigabytes * 1e9
        ranges = math.ceil(total / range_bytes)
        rounds = math.ceil(ranges / args.workers)
        seconds = rounds * range_s
        gb_s = ranges * range_s * LAMBDA_GB
        cost = gb_s * PRICE_GB_S + ranges * PRICE_REQUEST + ranges * TRANSITIONS_PER_CHILD * PRICE_TRANSITION
        print(
            f"  {gigabytes} GB: {ranges} ranges, {rounds} round(s) of {args.workers}: about {seconds / 60:.1f} min "
            f"for the first map (the second, treating the features, reads the channels again); "
            f"{gb_s:,.0f} GB-s, about ${cost:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
