"""The variants docs/benchmarks.md compares (k ranges, small-cluster rules, threshold rules), on the quality suite.

    python -m tools.quality_variants   (needs the quality extra; models cached in .cache/quality-variants/)

An emulation of the pipeline with its own pieces, outside the state machine, so that many variants are cheap: the
data step's split (StratifiedSplitter, 20%, seed 42, one block) and auto treatment, the SageMaker stand-in's
K-Means (best test:msd of 3 training jobs with hyperparameters drawn in the tuning ranges), model.clusters and
model.scoring. AP over every record of each set, mean of seeds 0-2; IsolationForest as in tools/quality_bench.py.
"""

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
from tools.quality_sets import BUILDERS

CACHE = Path(".cache/quality-variants")
SETS = list(BUILDERS)
SEEDS = (0, 1, 2)


def prepared(name, seed):
    CACHE.mkdir(parents=True, exist_ok=True)
    p = CACHE / f"prep_{name}_{seed}.pkl"
    if p.exists():
        return pickle.loads(p.read_bytes())
    s = BUILDERS[name](seed)
    te = StratifiedSplitter(0.2, 42).assign(len(s.X))
    L = TreatmentLearner(seed=42)
    L.add(s.X[~te], train=True)
    L.add(s.X[te], train=False)
    tr = L.decide(s.columns, {}, None)
    Z, _ = encode(tr, s.X)
    out = (s.X, s.anomalous, Z.astype(np.float32), te, tr)
    p.write_bytes(pickle.dumps(out))
    return out


def model(name, seed, k):
    p = CACHE / f"model_{name}_{seed}_{k}.npy"
    if p.exists():
        return np.load(p)
    X, y, Z, te, tr = prepared(name, seed)
    Ztr, Zte = Z[~te], Z[te]
    rng = np.random.default_rng([seed, k])
    hi = max(1, min(15000, len(Ztr)))
    lo = min(3000, hi)
    best = None
    for j in range(3):
        hp = {
            "k": str(k),
            "feature_dim": str(Z.shape[1]),
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
    np.save(p, best[1])
    return best[1]


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


def main() -> int:
    print(f"{'variant':46s}" + "".join(f"{s[:12]:>13s}" for s in SETS) + "  >= IF   mean")
    print(f"{'IsolationForest':46s}" + "".join(f"{sum(anchor(s, i)['if'] for i in SEEDS) / 3:13.3f}" for s in SETS))
    for cname, (krange, rule, n_min) in CONFIGS.items():
        row, means, wins = f"{cname:46s}", [], 0
        for name in SETS:
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
        print(row + f"  {wins}/{len(SETS)}  {sum(means) / len(means):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
