"""How the drift check's flagged-share test (model/drift.py, Fisher's exact) behaves: simulated models, each with its
threshold set as Evaluate sets it (the 99th percentile of its test rows' distances), checked on windows of unchanged
traffic (false alarms) and of traffic whose flagged rate is ``m`` times the model's true rate (alarms wanted).

    .venv/bin/python tools/flagged_share_sim.py --models 1000            # docs/usage.md, "Drift"
    .venv/bin/python tools/flagged_share_sim.py --models 100000 --multiples 1 --windows 10000 100000
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from kmeans_pipeline.model.drift import FLAGGED_P_VALUE, fisher_upper_tail


def alarms(models: int, test_rows: int, window: int, multiple: float, rng: np.random.Generator) -> int:
    """How many of ``models`` alarm. Test distances are N(0,1) draws (the counts are the same for any continuous
    law); the window's flagged count is Binomial(window, m x the true share beyond the model's threshold)."""
    found = 0
    for _ in range(models):
        test = rng.standard_normal(test_rows)
        threshold = float(np.percentile(test, 99))
        true_share = 0.5 * math.erfc(threshold / math.sqrt(2))
        flagged = int(rng.binomial(window, min(1.0, multiple * true_share)))
        found += fisher_upper_tail(flagged, window, int((test > threshold).sum()), test_rows) < FLAGGED_P_VALUE
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--test-rows", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--windows", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--multiples", type=float, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for test_rows in args.test_rows:
        for window in args.windows:
            for multiple in args.multiples:
                count = alarms(args.models, test_rows, window, multiple, rng)
                print(
                    f"test rows {test_rows:>7,}  window {window:>9,}  flagged x{multiple:g}: "
                    f"{count:,} of {args.models:,} models alarm (p < {FLAGGED_P_VALUE:g})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
