"""The hyperparameter search of a tuning job: the searched ranges and the strategy that proposes the next job.

Random draws uniformly in the (scaled) ranges; Bayesian starts with a space-filling design and then
maximises expected improvement under a small Gaussian-process surrogate; Grid walks every combination
of categorical values.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


class Range:
    """One searched hyperparameter; numeric values map to u in [0, 1] in their scaled space."""

    def __init__(self, name: str, kind: str, lo=None, hi=None, scaling="Auto", values=None):
        self.name, self.kind, self.lo, self.hi = name, kind, lo, hi
        self.scaling = "Linear" if scaling in (None, "Auto") else scaling
        self.values = list(values or [])

    @property
    def width(self) -> int:  # encoded dimensions
        return len(self.values) if self.kind == "Categorical" else 1

    def _t(self, v: float) -> float:
        if self.scaling == "Logarithmic":
            return math.log(v)
        if self.scaling == "ReverseLogarithmic":
            return -math.log(1.0 - v)
        return float(v)

    def _inv(self, t: float) -> float:
        if self.scaling == "Logarithmic":
            return math.exp(t)
        if self.scaling == "ReverseLogarithmic":
            return 1.0 - math.exp(-t)
        return t

    def decode(self, u: float | int) -> str:
        if self.kind == "Categorical":
            return self.values[int(u)]
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "Integer":
            if self.scaling == "Linear":
                v = self.lo + int(math.floor(u * (self.hi - self.lo + 1)))
            else:
                a, b = self._t(self.lo), self._t(self.hi)
                v = int(round(self._inv(a + u * (b - a))))
            return str(min(max(v, self.lo), self.hi))
        a, b = self._t(self.lo), self._t(self.hi)
        v = min(max(self._inv(a + u * (b - a)), self.lo), self.hi)
        return repr(float(v))

    def encode(self, value: str) -> np.ndarray:
        if self.kind == "Categorical":
            out = np.zeros(len(self.values))
            out[self.values.index(value)] = 1.0
            return out
        v = float(value)
        if self.kind == "Integer" and self.scaling == "Linear":
            return np.array([(v - self.lo + 0.5) / (self.hi - self.lo + 1)])
        a, b = self._t(self.lo), self._t(self.hi)
        return np.array([0.5 if b == a else (self._t(v) - a) / (b - a)])

    def contains(self, value: str) -> bool:
        if self.kind == "Categorical":
            return value in self.values
        try:
            v = float(value)
        except ValueError:
            return False
        if self.kind == "Integer" and v != int(v):
            return False
        return self.lo <= v <= self.hi

    def random(self, rng: np.random.Generator):
        return int(rng.integers(len(self.values))) if self.kind == "Categorical" else rng.random()


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)).astype(np.float64))


class Searcher:
    """Proposes the hyperparameters of the next training job of a tuning job.

    Random: uniform in the (scaled) ranges. Bayesian: a few random points covering every categorical
    value, then the candidate with the best expected improvement under a small Gaussian-process
    surrogate, candidates drawn both at random and near the best points so far. Grid: every combination of the categorical values.
    Proposals avoid repeating a configuration already tried or running while others remain.
    """

    def __init__(self, ranges: list[Range], strategy: str, max_jobs: int, rng: np.random.Generator):
        self.ranges, self.strategy, self.max_jobs, self.rng = ranges, strategy, max_jobs, rng
        self.n_random = max(2, min(5, max_jobs // 3))
        self._grid = list(itertools.product(*[r.values for r in ranges])) if strategy == "Grid" else []
        self._grid_pos = 0

    @staticmethod
    def key(values: dict[str, str]) -> tuple:
        return tuple(sorted(values.items()))

    def _random_config(self) -> dict[str, str]:
        return {r.name: r.decode(r.random(self.rng)) for r in self.ranges}

    def _encode(self, values: dict[str, str]) -> np.ndarray:
        return np.concatenate([r.encode(values[r.name]) for r in self.ranges])

    def propose(
        self, history: list[tuple[dict[str, str], float | None]], pending: list[dict[str, str]]
    ) -> dict[str, str]:
        if self.strategy == "Grid":
            combo = self._grid[self._grid_pos % len(self._grid)]
            self._grid_pos += 1
            return {r.name: v for r, v in zip(self.ranges, combo)}
        seen = {self.key(v) for v, _ in history} | {self.key(v) for v in pending}
        scored = [(v, y) for v, y in history if y is not None and math.isfinite(y)]
        if (
            self.strategy == "Bayesian"
            and len(scored) >= max(2, self.n_random)
            and len(history) + len(pending) >= self.n_random
        ):
            proposal = self._bayesian(scored, seen)
            if proposal is not None:
                return proposal
        tried = [v for v, _ in history] + list(pending)
        for _ in range(200):
            cand = self._space_filling_config(tried) if self.strategy == "Bayesian" else self._random_config()
            if self.key(cand) not in seen:
                return cand
        return self._random_config()  # the space is exhausted: repeat a configuration

    def _space_filling_config(self, tried: list[dict[str, str]]) -> dict[str, str]:
        """A random configuration whose categorical values are the ones tried least so far.

        An initial design that covers every categorical value before the surrogate takes over, as
        space-filling designs do: otherwise two unlucky first draws of the same category leave the
        search exploiting that category alone.
        """
        config = self._random_config()
        for r in self.ranges:
            if r.kind == "Categorical":
                uses = [sum(1 for t in tried if t.get(r.name) == value) for value in r.values]
                least = [value for value, n in zip(r.values, uses) if n == min(uses)]
                config[r.name] = least[int(self.rng.integers(len(least)))]
        return config

    def _bayesian(self, scored, seen) -> dict[str, str] | None:
        X = np.array([self._encode(v) for v, _ in scored])
        y = np.array([y for _, y in scored], dtype=np.float64)
        if np.all(y > 0):
            y = np.log(y)
        y = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
        order = np.argsort(y)
        cands: list[dict[str, str]] = [self._random_config() for _ in range(256)]
        for i in order[:3]:
            base = scored[int(i)][0]
            for _ in range(96):
                c = {}
                for r in self.ranges:
                    if r.kind == "Categorical":
                        c[r.name] = r.decode(r.random(self.rng)) if self.rng.random() < 0.25 else base[r.name]
                    else:
                        u = float(r.encode(base[r.name])[0]) + self.rng.normal(0.0, 0.12)
                        c[r.name] = r.decode(min(max(u, 0.0), 1.0))
                cands.append(c)
        unique: dict[tuple, dict[str, str]] = {}
        for c in cands:
            k = self.key(c)
            if k not in seen:
                unique.setdefault(k, c)
        if not unique:
            return None
        pool = list(unique.values())
        Xc = np.array([self._encode(c) for c in pool])
        ls, noise = 0.25, 1e-4

        def kern(a, b):
            d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return np.exp(-0.5 * d2 / ls**2)

        K = kern(X, X) + noise * np.eye(len(X))
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            L = np.linalg.cholesky(K + 1e-2 * np.eye(len(X)))
        alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
        ks = kern(Xc, X)
        mu = ks @ alpha
        v = np.linalg.solve(L, ks.T)
        sigma = np.sqrt(np.clip(1.0 - (v * v).sum(0), 1e-12, None))
        imp = y.min() - mu - 0.01
        z = imp / sigma
        ei = imp * _norm_cdf(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return pool[int(np.argmax(ei))]
