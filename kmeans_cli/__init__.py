"""Command line for a SageMaker K-Means model: export its centroids, or score a CSV offline as the endpoint would.

A tool users install with the project (``pip install .``), not part of the Lambda layer: no function imports it.

    python -m kmeans_cli export-centroids MODEL [--out FILE]
    python -m kmeans_cli score MODEL CSV [--report REPORT] [--overall] [--out FILE]
                                      [--header {auto,yes,no}] [--standardized] [--chunk-rows N]

MODEL is the model artifact: a ``model.tar.gz`` (or a bare ``model_algo-1``) on disk, or an ``s3://bucket/key``
URI, read without MXNet. No endpoint is needed; S3 is read with the usual AWS credentials and region.

export-centroids
    Writes ``{"k": K, "featureDim": D, "centroids": [[...], ...]}`` (JSON, to stdout unless ``--out``), every
    value exactly the float32 stored in the artifact. The centroids are in the units the model was trained on:
    model's feature units (the run's report has the treatment that makes them from the CSV's columns).

score
    Reads CSV (a path, or ``-`` for stdin) and writes it back (to stdout unless ``--out``) with the columns
    ``closest_cluster,distance_to_cluster`` appended, and ``score,anomaly`` when a report gives thresholds. The answer
    is the endpoint's within float32 error: the nearest centroid (the first one on a tie) and the Euclidean
    distance to it, computed in float32 (the container's own arithmetic is not documented). Clusters are written as integers, distances as
    the shortest decimal text of the float32 value widened to a double (what the endpoint's JSON holds).

    Feature columns: without ``--report``, every column, in order, and there must be feature_dim of them. With
    ``--report`` (the evaluation step's ``report.json``, a path or an s3:// URI), the report's
    ``featureColumns``, found by header name, so the CSV may hold other columns too (an id, a label, the raw
    source columns); a CSV without a header must then hold exactly the feature columns, in the report's order.

    Header: ``--header auto`` (the default) takes the first row as a header when none of its cells is a number,
    or when it holds one of the report's feature column names. A header is written back with the new column
    names appended; a CSV without a header gets none.

    Treatment: the report's ``treatment`` turns the CSV's columns into the model's features as the data step did
    for training: numeric columns as they are or z-scored, log columns as z-scored log1p (a negative value stops
    the run with its line and column), category columns one-hot (a level not seen in training is scored with
    none set, with a warning on stderr).
    ``--standardized`` says the CSV holds the model's features already (a run's test channel).

    Anomalies: ``score`` is the distance over the report's threshold for the record's cluster
    (``thresholds.perCluster``, where a report of an older release holds one; the overall threshold,
    ``thresholds.overall``, for every cluster in reports written now), and ``anomaly`` is ``true`` when the score
    is above 1; with ``--overall``, the overall threshold for every cluster. A record closest to a
    cluster the report calls small (``smallClusters``) is scored against the nearest other cluster, as the scoring
    API scores it.

    The CSV is read and scored ``--chunk-rows`` rows at a time (default 10000), so its size does not matter.
    Blank lines are skipped. Every value of a feature column must be a finite number; the first one that is
    not stops the run with its line and column.

Exit status: 0 on success; 2 with a one-line message on stderr (no traceback) when the model, the report (not
JSON, or not a valid evaluation report: the message names the field), the CSV or an argument is not usable.

Examples:

    python -m kmeans_cli export-centroids s3://my-bucket/models/run-1/output/model.tar.gz
    python -m kmeans_cli score model.tar.gz transactions.csv \\
        --report s3://my-bucket/reports/run-1/report.json --out scored.csv
"""

from kmeans_cli.commands import build_parser, main
from kmeans_cli.scoring import score_csv

__all__ = ["build_parser", "main", "score_csv"]
