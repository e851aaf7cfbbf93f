"""The variants docs/benchmarks.md compares (k ranges, small-cluster rules, threshold rules), on the quality suite.

    python -m tools.quality_variants [--table defaults|scaling|small|redundancy|demo|features|k] [--held-out]
    (needs the quality extra; models cached in .cache/quality-variants/)

An emulation of the pipeline with its own pieces, outside the state machine, so that many variants are cheap: the
data step's split (StratifiedSplitter, 20%, seed 42, one block) and auto treatment, the SageMaker stand-in's
K-Means (best test:msd of 3 training jobs with hyperparameters drawn in the tuning ranges), model.clusters and
model.scoring. AP over every record of each set, mean of seeds 0-2; IsolationForest as in tools/quality_bench.py.
``--table defaults``: the k ranges, small-cluster and threshold rules of issue 19's first round; ``--table scaling``:
its second round (robust scaling, 1-10 scales kept numeric, signed logs, per-cluster and pooled diagonal metrics,
the k floor with them); ``--table small``: its third round, which clusters are small (CBLOF's alpha / beta, sizes
relative to the average n / k, isolation, a category level split over several clusters) and LDCOF's score;
``--table redundancy``: its fourth round (weights from the columns' correlations, the product's default since,
shrunk whitening, principal components, the largest deviation and the 4-norm, a size-weighted mixture density over
the centroids; the emulation's treatment has equal weights, the default before), ``--table demo`` its variants'
worst runs on the demo's sample; ``--table features``: where the signal sits (each
treated column alone against the distance and IsolationForest, seed 0); ``--table k``: the default's AP at fixed k.
``--held-out``: the same table on the held-out sets, looked at only after a choice.
"""

import argparse
import json
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score as aps
from sklearn.metrics import roc_auc_score

from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.data.treatment import TreatmentLearner, encode
from kmeans_pipeline.model import clusters, scoring
from offline.standin import kmeans as standin
from tools.quality_sets import BUILDERS, HELD_OUT

CACHE = Path(".cache/quality-variants")
SETS = list(BUILDERS)
SEEDS = (0, 1, 2)


def prepared(name, seed):
    CACHE.mkdir(parents=True, exist_ok=True)
    p = CACHE / f"prep_{name}_{seed}.pkl"
    if p.exists():
        return pickle.loads(p.read_bytes())
    s = {**BUILDERS, **HELD_OUT}[name](seed)
    te = StratifiedSplitter(0.2, 42).assign(len(s.X))
    L = TreatmentLearner(seed=42)
    L.add(s.X[~te], train=True)
    L.add(s.X[te], train=False)
    tr = L.decide(s.columns, {}, None)
    Z, _ = encode(tr, s.X)
    out = (s.X, s.anomalous, Z.astype(np.float32), te, tr)
    p.write_bytes(pickle.dumps(out))
    return out


def best_of_three(Ztr, Zte, k, rng):
    """The centroids of three stand-in training jobs (tuning's draws) with the lowest test MSD."""
    hi = max(1, min(15000, len(Ztr)))
    lo = min(3000, hi)
    best = None
    for j in range(3):
        hp = {
            "k": str(k),
            "feature_dim": str(Ztr.shape[1]),
            "extra_center_factor": str(int(rng.integers(4, 11))),
            "mini_batch_size": str(int(rng.integers(lo, hi + 1)) if lo < hi else hi),
            "init_method": ["kmeans++", "random"][j % 2],
        }
        C = standin.train(
            Ztr, standin.KMeansParams.from_hyperparameters(hp), np.random.default_rng(rng.integers(2**31))
        )
        msd = standin.evaluate(Zte, C)["msd"]
        if best is None or msd < best[0]:
            best = (msd, C)
    return best[1]


def model(name, seed, k):
    p = CACHE / f"model_{name}_{seed}_{k}.npy"
    if p.exists():
        return np.load(p)
    X, y, Z, te, tr = prepared(name, seed)
    Ztr, Zte = Z[~te], Z[te]
    rng = np.random.default_rng([seed, k])
    centroids = best_of_three(Ztr, Zte, k, rng)
    np.save(p, centroids)
    return centroids


def kchoice(name, seed, lo, hi):
    p = CACHE / f"k_{name}_{seed}_{lo}_{hi}.json"
    if p.exists():
        return json.loads(p.read_text())
    X, y, Z, te, tr = prepared(name, seed)
    t = time.perf_counter()
    ch = clusters.choose_k(Z[~te], list(range(lo, hi + 1)), seed=42)
    out = {"k": ch.k, "seconds": time.perf_counter() - t, "db": {c.k: c.davies_bouldin for c in ch.candidates}}
    p.write_text(json.dumps(out))
    return out


def evaluate(name, seed, k, small_rule, n_min):
    X, y, Z, te, tr = prepared(name, seed)
    C = model(name, seed, k)
    closest, dist = scoring.score(Z, C)
    small = []
    if small_rule != "normal":
        cand = scoring.small_clusters(closest[~te], k)
        if small_rule == "anomalous":
            small = cand
        else:
            judged = clusters.judge_small_clusters(Z[~te], closest[~te], k, cand, tr)
            small = [j.index for j in judged if j.anomalous]
        if len(small) == k:
            small = []
    closest, dist = scoring.refer(Z, closest, dist, C, small)
    overall = float(np.percentile(dist[te], 99.0))
    # Per-cluster thresholds as the pipeline had them: the cluster's own 99th percentile of its test distances,
    # never above the overall one, for clusters with at least n_min of them (the overall one elsewhere).
    thr = []
    for j in range(k):
        d = dist[te][closest[te] == j]
        thr.append(min(float(np.percentile(d, 99.0)), overall) if d.size and d.size >= max(n_min, 1) else None)
    score = scoring.anomaly_score(closest, dist, thr, overall)
    fo = dist > overall
    return dict(
        ap_s=aps(y, score),
        ap_d=aps(y, dist),
        auc=roc_auc_score(y, score),
        rec=(fo & y).sum() / y.sum(),
        prec=(fo & y).sum() / max(fo.sum(), 1),
        inf=int(np.isinf(score).sum()),
    )


def anchor(name, seed):
    p = CACHE / f"anchor_{name}_{seed}.json"
    if p.exists():
        return json.loads(p.read_text())
    from sklearn.ensemble import IsolationForest

    X, y, Z, te, tr = prepared(name, seed)
    iso = -IsolationForest(random_state=0).fit(X).score_samples(X)
    out = {"if": aps(y, iso)}
    p.write_text(json.dumps(out))
    return out


INF = 10**9
CONFIGS = {
    "k=8, normal, per-cluster thresholds (before)": (None, "normal", 0),
    "k=8, auto, overall": (None, "auto", INF),
    "DB 8..16, auto, overall": ((8, 16), "auto", INF),
    "DB 8..sqrt(n/2)<=16, auto, overall (default)": ("sqrt", "auto", INF),
    "DB 8..sqrt, auto, own threshold >= 20": ("sqrt", "auto", 20),
    "DB 8..sqrt, auto, own threshold >= 50": ("sqrt", "auto", 50),
    "DB 8..sqrt, auto, own threshold >= 200": ("sqrt", "auto", 200),
    "DB 8..sqrt, anomalous, overall": ("sqrt", "anomalous", INF),
    "DB 8..sqrt, normal, overall": ("sqrt", "normal", INF),
    "DB 8..24, auto, overall": ((8, 24), "auto", INF),
    "DB 8..32, auto, overall": ((8, 32), "auto", INF),
    "DB 2..16, auto, overall": ((2, 16), "auto", INF),
}


# ------------------------------------------------------------------------------------------------------------
# Issue 19, second round: feature scaling, the score's metric, and the k floor with them (`--table scaling`).
# Each variant is mean AP over seeds 0-2 and over REPS training runs per seed (the stand-in's K-Means drawn with
# three different seeds): on a few hundred rows a float's last bit in a scale changes the model, and one run per
# seed moved a set's AP by up to 0.1 between two emulations that differ only so.
# ------------------------------------------------------------------------------------------------------------

REPS = 3


def _robust(b: np.ndarray) -> tuple[float, float]:
    """(median, IQR / 1.349): the normal-consistent robust centre and scale; MAD x 1.4826, then the std, then 1
    where the IQR is 0."""
    q1, med, q3 = np.percentile(b, [25, 50, 75])
    for s in ((q3 - q1) / 1.349, 1.4826 * float(np.median(np.abs(b - med))), float(b.std()), 1.0):
        if s > 0:
            return float(med), float(s)
    return float(med), 1.0


def _scale_levels(levels, minimum: int) -> bool:
    lv = np.asarray(levels or [], dtype=np.float64)
    return len(lv) >= minimum and np.array_equal(lv, np.arange(lv.min(), lv.max() + 1))


def features(name, seed, scaling):
    """The treated features under a scaling variant: ``z`` (the product's), ``robust`` (median and IQR instead of
    mean and std, numeric and log columns), ``+ordinal`` (a category of 10 consecutive whole numbers, wbc's 1-10
    scores, kept numeric), ``+slog`` (a numeric column whose 99th percentile deviation from the median is 10x its
    median deviation gets a signed log of that deviation)."""
    X, y, Z, te, tr = prepared(name, seed)
    base, _, post = scaling.partition("@")
    if post:
        Z, trz = features(name, seed, base)
        return _reweighted(Z, te, post), trz
    if scaling == "z":
        return Z.astype(np.float64), tr
    cols, kept = [], []
    for j, c in enumerate(tr.columns):
        x, kind = X[:, j], c.kind
        if "ordinal" in scaling and kind == "category" and _scale_levels(c.levels, 10):
            kind = "numeric"
        if kind == "category":
            cols.append((X[:, [j]] == np.asarray(c.levels)[None, :]).astype(np.float64))
            kept.append(c)
            continue
        kept.append(c.model_copy(update={"kind": "numeric", "levels": None}))
        b = np.log1p(x) if kind == "log" else x
        if "slog" in scaling and kind == "numeric":
            med = float(np.median(b[~te]))
            p50, p99 = np.percentile(np.abs(b[~te] - med), [50, 99])
            if p50 > 0 and p99 / p50 >= 10:
                b = np.sign(b - med) * np.log1p(np.abs(b - med) / p50)
        m, s = _robust(b[~te]) if scaling.startswith("robust") else (float(b[~te].mean()), float(b[~te].std()) or 1.0)
        cols.append(((b - m) / s)[:, None])
    from kmeans_pipeline.schemas.dataset import FeatureTreatment

    return np.hstack(cols), FeatureTreatment(columns=kept)


def _reweighted(Z: np.ndarray, te: np.ndarray, post: str) -> np.ndarray:
    """Issue 19's fourth round: the treated features re-weighted, from the training rows.

    ``corr``: each column times 1 / sqrt(sum_i r_ij^2), r the columns' correlations (1 for a constant column), so
    that m copies of one column weigh as one column and an uncorrelated column keeps its weight (one-hot columns
    count as columns); ``corrup-P``: each column times (sum_i r_ij^2) ** P (P = 1/2: the product's
    ``data.treatment.correlation_weights``); ``pca-S``: the principal components that explain a share S of the
    variance, unscaled; ``whiten-A``: principal components, each over sqrt(its variance + A x the mean variance)
    (shrunk whitening)."""
    tr = Z[~te]
    if post == "corr" or post.startswith("corrup-"):
        live = tr.std(0) > 0
        w = np.ones(Z.shape[1])
        if live.sum() > 1:
            mass = (np.corrcoef(tr[:, live], rowvar=False) ** 2).sum(0)
            w[live] = 1.0 / np.sqrt(mass) if post == "corr" else mass ** float(post.split("-")[1])
        return Z * w
    mu = tr.mean(0)
    lam, vec = np.linalg.eigh(np.cov(tr - mu, rowvar=False))
    if post.startswith("pca-"):
        order = np.argsort(lam)[::-1]
        lam, vec = np.maximum(lam[order], 0), vec[:, order]
        m = int(np.searchsorted(np.cumsum(lam) / lam.sum(), float(post.split("-")[1])) + 1)
        return (Z - mu) @ vec[:, :m]
    if post.startswith("whiten-"):
        lam = np.maximum(lam, 0)
        return ((Z - mu) @ vec) / np.sqrt(lam + float(post.split("-")[1]) * lam.mean() + 1e-12)
    raise ValueError(post)


def model2(name, seed, scaling, k, Z, te, rep):
    if scaling == "z" and rep == 0:
        return model(name, seed, k)
    p = CACHE / f"model2_{name}_{seed}_{scaling}_{k}_{rep}.npy"
    if p.exists():
        return np.load(p)
    Ztr, Zte = Z[~te].astype(np.float32), Z[te].astype(np.float32)
    rng = np.random.default_rng([seed, k, rep])
    centroids = best_of_three(Ztr, Zte, k, rng)
    np.save(p, centroids)
    return centroids


def _referred(Z, Zj, te, C, trz):
    """(closest, reference cluster, distance to it, small clusters judged anomalous) of every row: the product's
    auto rule (CBLOF's small clusters, the category judgement on Zj's one-hot columns, the nearest large cluster)."""
    k = len(C)
    own, dist = scoring.score(Z, C)
    judged = clusters.judge_small_clusters(Zj[~te], own[~te], k, scoring.small_clusters(own[~te], k), trz)
    small = [j.index for j in judged if j.anomalous]
    closest, dist = scoring.refer(Z, own, dist, C, small if len(small) < k else [])
    return own, closest, dist, small


def evaluate2(name, seed, scaling, floor, metric, rep, recall=False):
    """AP of one variant: the scaling, DB over floor..max(floor, min(16, sqrt(n/2))), auto small clusters, and the
    score's metric: ``euclid`` (the endpoint's distance, the product's), ``diag-m`` (to the reference cluster,
    each feature over that cluster's own training spread around its centroid, shrunk to the pooled one with m
    pseudo-rows), ``pooled`` (each feature over the pooled within-cluster spread: one diagonal metric)."""
    X, y, _, te, tr = prepared(name, seed)
    Z, trz = features(name, seed, scaling)
    hi = max(floor, min(16, math.isqrt(int((~te).sum()) // 2)))
    p = CACHE / f"k2_{name}_{seed}_{scaling}_{floor}_{hi}.json"
    if not p.exists():
        p.write_text(json.dumps({"k": clusters.choose_k(Z[~te], list(range(floor, hi + 1)), seed=42).k}))
    k = json.loads(p.read_text())["k"]
    C = model2(name, seed, scaling, k, Z, te, rep)
    # A re-weighted variant's one-hot columns are judged as the treatment wrote them.
    own, closest, dist, small = _referred(Z, features(name, seed, scaling.partition("@")[0])[0], te, C, trz)
    if metric == "euclid":
        if recall:  # (AP, recall at the overall threshold: the test distances' 99th percentile)
            return aps(y, dist), float(((dist > np.percentile(dist[te], 99.0)) & y).sum() / y.sum())
        return aps(y, dist)
    if metric.startswith("mix"):
        # A mixture of spherical Gaussians at the centroids, weighted by training sizes, one variance: the score is
        # minus the log density. ``mixref``: without the clusters judged anomalous. ``mixT``: variance x T.
        Cf = np.asarray(C, dtype=np.float64)
        sq = clusters._squared(Z, Cf)
        var = float(sq[~te][np.arange(int((~te).sum())), own[~te]].mean()) / Z.shape[1]
        temp = float(metric.split("-")[1]) if "-" in metric else 1.0
        sizes = np.bincount(own[~te], minlength=k).astype(np.float64) + 1.0
        if metric.startswith("mixref") and 0 < len(small) < k:
            sizes[small] = 0.0
        logw = np.log(np.maximum(sizes, 1e-300) / sizes.sum())
        a = logw[None, :] - sq / (2 * var * temp * Z.shape[1])
        top = a.max(1)
        return aps(y, -(top + np.log(np.exp(a - top[:, None]).sum(1))))
    D = (Z - np.asarray(C, dtype=np.float64)[closest]) ** 2
    if metric.startswith("l"):  # the largest feature's deviation (linf), or the 4-norm (l4)
        return aps(y, D.max(1) if metric == "linf" else (D**2).sum(1))
    pooled = np.maximum(D[~te].mean(0), 1e-6)
    var = np.tile(pooled, (len(C), 1))
    if metric.startswith("diag"):
        m = float(metric.split("-")[1])
        for j in range(len(C)):
            rows = (~te) & (closest == j)
            n = int(rows.sum())
            if n:
                var[j] = (n * D[rows].mean(0) + m * pooled) / (n + m)
    return aps(y, np.sqrt((D / var[closest]).sum(1)))


SCALING_CONFIGS = {
    "z-scores, DB 8.., distance (default)": ("z", 8, "euclid"),
    "robust (median, IQR)": ("robust", 8, "euclid"),
    "z, 1-10 scales kept numeric": ("z+ordinal", 8, "euclid"),
    "robust, 1-10 scales kept numeric": ("robust+ordinal", 8, "euclid"),
    "z, signed log of heavy tails": ("z+slog", 8, "euclid"),
    "robust, signed log of heavy tails": ("robust+slog", 8, "euclid"),
    "z, per-cluster diagonal, m=10": ("z", 8, "diag-10"),
    "z, per-cluster diagonal, m=100": ("z", 8, "diag-100"),
    "robust, per-cluster diagonal, m=10": ("robust", 8, "diag-10"),
    "z, pooled within-cluster diagonal": ("z", 8, "pooled"),
    "robust, pooled within-cluster diagonal": ("robust", 8, "pooled"),
    "z, DB 2..": ("z", 2, "euclid"),
    "robust, DB 2..": ("robust", 2, "euclid"),
    "z, DB 2.., pooled diagonal": ("z", 2, "pooled"),
}

# Issue 19, fourth round: redundant features (`--table redundancy`).
REDUNDANCY_CONFIGS = {
    "z, equal weights (before)": ("z", 8, "euclid"),
    "z, x (sum r^2)^(-1/2)": ("z@corr", 8, "euclid"),
    "z, whitened, shrink 0.1": ("z@whiten-0.1", 8, "euclid"),
    "z, whitened, shrink 1": ("z@whiten-1", 8, "euclid"),
    "z, x (sum r^2)^(-1/2), DB 2..": ("z@corr", 2, "euclid"),
    "z, largest feature deviation": ("z", 8, "linf"),
    "z, 4-norm of the deviations": ("z", 8, "l4"),
    "z, components to 90% of variance": ("z@pca-0.9", 8, "euclid"),
    "z, components to 75% of variance": ("z@pca-0.75", 8, "euclid"),
    "z, x (sum r^2)^(1/8)": ("z@corrup-0.125", 8, "euclid"),
    "z, x (sum r^2)^(1/4)": ("z@corrup-0.25", 8, "euclid"),
    "z, x (sum r^2)^(1/2) (the default)": ("z@corrup-0.5", 8, "euclid"),
    "z, x (sum r^2)^(3/4)": ("z@corrup-0.75", 8, "euclid"),
    "z, x (sum r^2)^1": ("z@corrup-1", 8, "euclid"),
    "z, size-weighted mixture": ("z", 8, "mix"),
    "z, size-weighted mixture, x4 var": ("z", 8, "mix-4"),
    "z, mixture without judged small": ("z", 8, "mixref"),
    "z, mixture w/o judged small x4": ("z", 8, "mixref-4"),
    "z, mixture w/o judged small x0.25": ("z", 8, "mixref-0.25"),
}


def scaling_table(sets: list[str], configs: dict | None = None) -> None:
    forest = [sum(anchor(s, i)["if"] for i in SEEDS) / len(SEEDS) for s in sets]
    print(f"{'variant':40s}" + "".join(f"{s[:12]:>13s}" for s in sets) + "  >= IF   mean")
    print(f"{'IsolationForest':40s}" + "".join(f"{v:13.3f}" for v in forest))
    for cname, (scaling, floor, metric) in (configs or SCALING_CONFIGS).items():
        means = [
            float(np.mean([evaluate2(s, i, scaling, floor, metric, r) for i in SEEDS for r in range(REPS)]))
            for s in sets
        ]
        wins = sum(m >= f for m, f in zip(means, forest))
        print(
            f"{cname:40s}" + "".join(f"{m:13.3f}" for m in means) + f"  {wins}/{len(sets)}  {np.mean(means):.3f}",
            flush=True,
        )


def defaults_table(sets: list[str]) -> None:
    print(f"{'variant':46s}" + "".join(f"{s[:12]:>13s}" for s in sets) + "  >= IF   mean")
    print(f"{'IsolationForest':46s}" + "".join(f"{sum(anchor(s, i)['if'] for i in SEEDS) / 3:13.3f}" for s in sets))
    for cname, (krange, rule, n_min) in CONFIGS.items():
        row, means, wins = f"{cname:46s}", [], 0
        for name in sets:
            aps_ = []
            for seed in SEEDS:
                X, y, Z, te, tr = prepared(name, seed)
                if krange is None:
                    k = 8
                else:
                    lo, hi = (8, max(8, min(16, math.isqrt(int((~te).sum()) // 2)))) if krange == "sqrt" else krange
                    k = kchoice(name, seed, lo, hi)["k"]
                aps_.append(evaluate(name, seed, k, rule, n_min)["ap_s"])
            m = sum(aps_) / len(aps_)
            means.append(m)
            wins += m >= sum(anchor(name, i)["if"] for i in SEEDS) / 3
            row += f"{m:13.3f}"
        print(row + f"  {wins}/{len(sets)}  {sum(means) / len(means):.3f}", flush=True)


# ------------------------------------------------------------------------------------------------------------
# Issue 19, third round: which clusters are small (`--table small`). z-scores, DB 8.., the stand-in's K-Means, mean
# AP over seeds 0-2 and REPS training runs each (the scaling table's models); only the small-cluster rule (which
# clusters are candidates, and which candidates are judged anomalous) and, for LDCOF, the score differ.
# ------------------------------------------------------------------------------------------------------------


def _centroid_stats(Ztr: np.ndarray, closest: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, mean distance of each cluster's training rows to its centroid) ; 0 for an empty cluster."""
    k = len(C)
    sizes = np.bincount(closest, minlength=k)
    d = np.sqrt(((Ztr - C[closest]) ** 2).sum(1))
    mean = np.bincount(closest, weights=d, minlength=k) / np.maximum(sizes, 1)
    return sizes, mean


def small_candidates(rule: str, Ztr: np.ndarray, closest: np.ndarray, C: np.ndarray) -> list[int]:
    """The clusters a rule calls small (candidates for the category judgement), from the training rows.

    ``cblof-A-B``: CBLOF's size rule with alpha A and beta B (He et al. 2003; the product's is 0.9 / 5).
    ``expected-G``: fewer training rows than G x n / k, the size every cluster would have if they were equal.
    ``cblof|expected-G``: either. ``isolated-R``: fewer than n / k rows and R times farther from the nearest other
    centroid than its own rows are from it on average (a tight, isolated group of few records).
    ``cblof|isolated-R``: either."""
    k = len(C)
    sizes, spread = _centroid_stats(Ztr, closest, C)
    n = int(sizes.sum())
    out: set[int] = set()
    for part in rule.split("|"):
        if part == "cblof":
            out |= set(scoring.small_clusters(closest, k))
        elif part.startswith("cblof-"):
            _, a, b = part.split("-")
            out |= set(scoring.small_clusters(closest, k, float(a), float(b)))
        elif part.startswith("expected-"):
            g = float(part.split("-")[1])
            out |= {j for j in range(k) if sizes[j] < g * n / k}
        elif part.startswith("isolated-"):
            r = float(part.split("-")[1])
            between = np.sqrt(clusters._squared(C, C))
            np.fill_diagonal(between, np.inf)
            sep = between.min(1)
            out |= {j for j in range(k) if sizes[j] == 0 or (sizes[j] < n / k and sep[j] > r * max(spread[j], 1e-12))}
        else:
            raise ValueError(part)
    return sorted(out)


def _split_kind(index: int, Ztr: np.ndarray, closest: np.ndarray, k: int, trz) -> bool:
    """A third way a category level explains a small cluster (``category+split``): the level holds EXPLAINED_SHARE
    of the cluster's rows, and the clusters it makes up EXPLAINED_SHARE of, small or large, together hold
    EXPLAINED_SHARE of its records (K-Means split one kind of record in several clusters, none of them large)."""
    share = clusters.EXPLAINED_SHARE
    members = closest == index
    if not members.any():
        return False
    for _, at, levels in clusters._category_blocks(trz):
        hot = Ztr[:, at : at + len(levels)] > 0.5
        for level in np.flatnonzero(hot[members].mean(0) >= share):
            dominated = [j for j in range(k) if (closest == j).any() and hot[closest == j, level].mean() >= share]
            if hot[np.isin(closest, dominated), level].sum() >= share * hot[:, level].sum():
                return True
    return False


def evaluate_small(name, seed, rule, judge, score_kind, rep):
    """(AP, recall at the overall threshold) of one small-cluster variant. ``judge``: ``category`` (the product's
    judgement of each candidate) or ``none`` (every candidate anomalous). ``score_kind``: ``distance`` (to the
    reference cluster, the endpoint's) or ``ldcof`` (Amer and Goldstein 2012: that distance over the reference
    cluster's mean training distance)."""
    X, y, _, te, tr = prepared(name, seed)
    Z, trz = features(name, seed, "z")
    hi = max(8, min(16, math.isqrt(int((~te).sum()) // 2)))
    p = CACHE / f"k2_{name}_{seed}_z_8_{hi}.json"
    if not p.exists():
        p.write_text(json.dumps({"k": clusters.choose_k(Z[~te], list(range(8, hi + 1)), seed=42).k}))
    k = json.loads(p.read_text())["k"]
    C = np.asarray(model2(name, seed, "z", k, Z, te, rep), dtype=np.float64)
    closest, dist = scoring.score(Z, C)
    cand = small_candidates(rule, Z[~te], closest[~te], C)
    if judge.startswith("category"):
        small = [j.index for j in clusters.judge_small_clusters(Z[~te], closest[~te], k, cand, trz) if j.anomalous]
        if judge == "category+split":
            small = [j for j in small if not _split_kind(j, Z[~te], closest[~te], k, trz)]
    else:
        small = cand
    ref, d = scoring.refer(Z, closest, dist, C, small if len(small) < k else [])
    d = d.astype(np.float64)
    if score_kind == "ldcof":
        _, spread = _centroid_stats(Z[~te], closest[~te], C)
        d = d / np.maximum(spread[ref], 1e-12)
    overall = float(np.percentile(d[te], 99.0))
    return aps(y, d), float(((d > overall) & y).sum() / y.sum())


SMALL_CONFIGS = {
    "CBLOF 0.9/5 + category (default)": ("cblof", "category", "distance"),
    "CBLOF 0.8/5 + category": ("cblof-0.8-5", "category", "distance"),
    "CBLOF 0.95/5 + category": ("cblof-0.95-5", "category", "distance"),
    "CBLOF 0.9/3 + category": ("cblof-0.9-3", "category", "distance"),
    "CBLOF 0.9/2 + category": ("cblof-0.9-2", "category", "distance"),
    "below n/(2k) + category": ("expected-0.5", "category", "distance"),
    "below n/k + category": ("expected-1", "category", "distance"),
    "CBLOF or below n/(2k) + category": ("cblof|expected-0.5", "category", "distance"),
    "CBLOF or below n/k + category": ("cblof|expected-1", "category", "distance"),
    "CBLOF or isolated x2 + category": ("cblof|isolated-2", "category", "distance"),
    "CBLOF or isolated x3 + category": ("cblof|isolated-3", "category", "distance"),
    "below n/k, no judgement": ("expected-1", "none", "distance"),
    "CBLOF + category or split kind": ("cblof", "category+split", "distance"),
    "below n/(2k) + cat. or split": ("expected-0.5", "category+split", "distance"),
    "below n/k + category or split kind": ("expected-1", "category+split", "distance"),
    "below 0.75 n/k + category or split": ("expected-0.75", "category+split", "distance"),
    "below 1.5 n/k + category or split": ("expected-1.5", "category+split", "distance"),
    "CBLOF or below n/k + cat. or split": ("cblof|expected-1", "category+split", "distance"),
    "CBLOF 0.8/5 + category or split kind": ("cblof-0.8-5", "category+split", "distance"),
    "LDCOF, CBLOF + category": ("cblof", "category", "ldcof"),
    "LDCOF, below n/k + category": ("expected-1", "category", "ldcof"),
}


def small_table(sets: list[str]) -> None:
    forest = [sum(anchor(s, i)["if"] for i in SEEDS) / len(SEEDS) for s in sets]
    print(f"{'variant':36s}" + "".join(f"{s[:12]:>13s}" for s in sets) + "  >= IF   mean  demo min AP/recall")
    print(f"{'IsolationForest':36s}" + "".join(f"{v:13.3f}" for v in forest))
    for cname, (rule, judge, kind) in SMALL_CONFIGS.items():
        runs = {s: [evaluate_small(s, i, rule, judge, kind, r) for i in SEEDS for r in range(REPS)] for s in sets}
        means = [float(np.mean([a for a, _ in runs[s]])) for s in sets]
        wins = sum(m >= f for m, f in zip(means, forest))
        demo = runs.get("transactions")
        tail = f"  {min(a for a, _ in demo):.3f}/{min(r for _, r in demo):.0%}" if demo else ""
        print(
            f"{cname:36s}" + "".join(f"{m:13.3f}" for m in means) + f"  {wins}/{len(sets)}  {np.mean(means):.3f}{tail}",
            flush=True,
        )


def demo_table(sets: list[str]) -> None:
    """The demo's sample under each fourth-round variant that keeps the endpoint's distance: the worst AP and recall
    at the overall threshold over its nine runs (three seeds, three training runs each)."""
    print(f"{'variant':40s}  worst AP  worst recall")
    for cname, (scaling, floor, metric) in REDUNDANCY_CONFIGS.items():
        if metric != "euclid":
            continue
        runs = [
            evaluate2("transactions", i, scaling, floor, metric, r, recall=True) for i in SEEDS for r in range(REPS)
        ]
        print(f"{cname:40s}  {min(a for a, _ in runs):8.3f}  {min(r for _, r in runs):12.0%}", flush=True)


def features_table(sets: list[str]) -> None:
    """Where the signal sits (fourth round): AP of the distance to the reference cluster (the default, seed 0,
    the first training run) beside the AP of each treated column's absolute z-score alone, the best three, and
    IsolationForest on the raw columns and on the treated ones."""
    from sklearn.ensemble import IsolationForest

    print(f"{'set':14s} {'columns':>8s} {'distance':>9s} {'IF raw':>7s} {'IF treated':>11s}  best single columns")
    for name in sets:
        X, y, _, te, tr = prepared(name, 0)
        Z, _ = features(name, 0, "z")
        single = sorted((aps(y, np.abs(Z[:, j])) for j in range(Z.shape[1])), reverse=True)[:3]
        treated = aps(y, -IsolationForest(random_state=0).fit(Z).score_samples(Z))
        print(
            f"{name:14s} {Z.shape[1]:8d} {evaluate2(name, 0, 'z', 8, 'euclid', 0):9.3f} {anchor(name, 0)['if']:7.3f}"
            f" {treated:11.3f}  " + ", ".join(f"{v:.3f}" for v in single),
            flush=True,
        )


def fixed_k_table(sets: list[str]) -> None:
    """AP of the default's distance at a fixed k (mean of seeds 0-2, one training run each; k = 1 is the distance
    to the training rows' mean), to see whether any k reaches a set's IsolationForest."""
    print(f"{'k':>4s}" + "".join(f"{s[:12]:>13s}" for s in sets))
    print(f"{'IF':>4s}" + "".join(f"{np.mean([anchor(s, i)['if'] for i in SEEDS]):13.3f}" for s in sets))
    for k in (1, 2, 3, 4, 6, 8, 12, 16, 24):
        row = []
        for name in sets:
            aps_ = []
            for seed in SEEDS:
                _, y, _, te, _ = prepared(name, seed)
                Z, trz = features(name, seed, "z")
                if k == 1:
                    aps_.append(aps(y, np.sqrt(((Z - Z[~te].mean(0)) ** 2).sum(1))))
                    continue
                aps_.append(aps(y, _referred(Z, Z, te, model2(name, seed, "z", k, Z, te, 1), trz)[2]))
            row.append(float(np.mean(aps_)))
        print(f"{k:4d}" + "".join(f"{v:13.3f}" for v in row), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table", choices=("defaults", "scaling", "small", "redundancy", "demo", "features", "k"), default="defaults"
    )
    parser.add_argument("--held-out", action="store_true", help="the held-out sets (tools/quality_sets.HELD_OUT)")
    args = parser.parse_args(argv)
    sets = list(HELD_OUT) if args.held_out else SETS
    tables = {
        "defaults": defaults_table,
        "scaling": scaling_table,
        "small": small_table,
        "redundancy": lambda sets: scaling_table(sets, REDUNDANCY_CONFIGS),
        "demo": demo_table,
        "features": features_table,
        "k": fixed_k_table,
    }
    tables[args.table](sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
