"""The two commands, their arguments and exit status (the package's docstring is the help text)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import kmeans_cli
from kmeans_cli.files import Clients, input_text, load_report, output, read_model
from kmeans_cli.scoring import DEFAULT_CHUNK_ROWS, PROG, score_csv
from kmeans_pipeline.errors import PipelineError
from kmeans_pipeline.model.artifact import centroids_to_json


def _export(args: argparse.Namespace, clients: Clients) -> None:
    centroids = read_model(args.model, clients)
    with output(args.out) as out:
        out.write(json.dumps(centroids_to_json(centroids)) + "\n")


def _score(args: argparse.Namespace, clients: Clients) -> None:
    centroids = read_model(args.model, clients)
    report = load_report(args.report, clients) if args.report else None
    csv_name = "stdin" if args.csv == "-" else args.csv
    with input_text(args.csv) as source, output(args.out) as out:
        score_csv(
            centroids,
            source,
            out,
            csv_name=csv_name,
            report=report,
            report_name=args.report or "",
            overall=args.overall,
            header=args.header,
            standardized=args.standardized,
            chunk_rows=args.chunk_rows,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=kmeans_cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{export-centroids,score}")

    export = commands.add_parser(
        "export-centroids",
        help="write the model's centroids as JSON",
        description='Write {"k", "featureDim", "centroids"} (JSON) of a K-Means model artifact.',
    )
    export.add_argument("model", metavar="MODEL", help="model.tar.gz or model_algo-1: a path or an s3:// URI")
    export.add_argument("--out", metavar="FILE", help="write the JSON here instead of stdout")
    export.set_defaults(run=_export)

    scorer = commands.add_parser(
        "score",
        help="score a CSV offline, as the endpoint would (within float32 error)",
        description="Append closest_cluster, distance_to_cluster (and score, anomaly, with a report's thresholds) to "
        f"every row of a CSV, computed as SageMaker's K-Means endpoint does. See `{PROG} --help` "
        "for the rules on feature columns, headers and treatments.",
    )
    scorer.add_argument("model", metavar="MODEL", help="model.tar.gz or model_algo-1: a path or an s3:// URI")
    scorer.add_argument("csv", metavar="CSV", help="the CSV to score: a path, or - for stdin")
    scorer.add_argument(
        "--report",
        metavar="REPORT",
        help="the evaluation report.json (path or s3:// URI): feature columns by header name, "
        "treatment, and the thresholds of the score and anomaly columns",
    )
    scorer.add_argument(
        "--overall",
        action="store_true",
        help="flag anomalies by the report's overall threshold instead of each cluster's",
    )
    scorer.add_argument("--out", metavar="FILE", help="write the scored CSV here instead of stdout")
    scorer.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the first row is a header (default: auto)",
    )
    scorer.add_argument(
        "--standardized",
        action="store_true",
        help="the CSV holds the model's features already: do not apply the report's treatment",
    )
    scorer.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows read and scored at a time (default {DEFAULT_CHUNK_ROWS})",
    )
    scorer.set_defaults(run=_score)
    return parser


def main(argv: list[str] | None = None, *, s3: Any = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args, Clients(s3))
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (PipelineError, ValueError, OSError) as exc:
        return _fail(exc)
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):  # no credentials, S3 throttling or server errors
            return _fail(exc)
        raise
    return 0


def _fail(exc: BaseException) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2
