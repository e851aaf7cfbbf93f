"""A seeded, realistic sample of transactions for the offline demo.

Five lines of business (`tranCode`), each with its own amount distribution, and a small share of injected
anomalies: amounts that are ordinary somewhere but not for their line of business. The anomalies' line numbers
(1-based, the header is line 1) are written beside the CSV so a report can score how many were flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# tranCode -> (name, sampler of amounts); all amounts in dollars.
LINES_OF_BUSINESS = {
    1: "card purchase (log-normal around $45)",
    2: "ATM withdrawal (multiples of $20, $20-$400)",
    3: "bill payment (normal, $120 +/- $30)",
    4: "payroll deposit (normal, $2,500 +/- $300)",
    5: "wire transfer (log-normal around $5,000)",
}
SHARES = np.array([0.45, 0.20, 0.20, 0.10, 0.05])
ANOMALY_SHARE = 0.005
MIN_ROWS = 10


@dataclass(frozen=True)
class Sample:
    csv_path: Path
    anomalies_path: Path
    rows: int
    anomaly_lines: list[int]


def _amounts(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    amounts = np.empty(len(codes))
    for code in LINES_OF_BUSINESS:
        mask = codes == code
        n = int(mask.sum())
        if code == 1:
            amounts[mask] = rng.lognormal(np.log(45), 0.6, n)
        elif code == 2:
            amounts[mask] = 20 * rng.integers(1, 21, n)
        elif code == 3:
            amounts[mask] = np.abs(rng.normal(120, 30, n))
        elif code == 4:
            amounts[mask] = rng.normal(2500, 300, n)
        else:
            amounts[mask] = rng.lognormal(np.log(5000), 0.35, n)
    return amounts


def _anomalous_amounts(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Far from what the line of business normally sees: a $9,000 card purchase, a $15 payroll deposit...
    far = {1: (6000, 15000), 2: (3000, 9000), 3: (4000, 12000), 4: (5, 60), 5: (25000, 60000)}
    return np.array([rng.uniform(*far[int(code)]) for code in codes])


def generate(directory: Path, rows: int = 100_000, seed: int = 7) -> Sample:
    if rows < MIN_ROWS:
        raise ValueError(f"the sample needs at least {MIN_ROWS} rows")
    rng = np.random.default_rng(seed)
    codes = rng.choice(list(LINES_OF_BUSINESS), size=rows, p=SHARES)
    amounts = _amounts(codes, rng)
    n_anomalies = max(1, int(rows * ANOMALY_SHARE))
    anomaly_rows = np.sort(rng.choice(rows, size=n_anomalies, replace=False))
    amounts[anomaly_rows] = _anomalous_amounts(codes[anomaly_rows], rng)

    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "transactions.csv"
    with csv_path.open("w") as out:
        out.write("tranCode,Amount\n")
        out.writelines(f"{c},{a:.2f}\n" for c, a in zip(codes.tolist(), amounts.tolist()))
    lines = [int(r) + 2 for r in anomaly_rows]  # data row i is on line i + 2
    anomalies_path = directory / "transactions.anomalies.json"
    anomalies_path.write_text(
        json.dumps(
            {"seed": seed, "rows": rows, "lines_of_business": LINES_OF_BUSINESS, "anomaly_lines": lines}, indent=1
        )
    )
    return Sample(csv_path=csv_path, anomalies_path=anomalies_path, rows=rows, anomaly_lines=lines)
