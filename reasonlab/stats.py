"""Intervals and paired tests for accuracies (SciPy's exact binomial test underneath).

- ``wilson(k, n)``: the 95 % Wilson score interval of k successes in n.
- ``mcnemar(gained, lost)``: the exact (binomial) McNemar p-value of two systems scored on
  the same items, from the discordant pairs only.
- ``paired_bootstrap(a, b)``: the mean difference b − a over paired 0/1 scores with a 95 %
  percentile bootstrap interval.
- ``mean_interval(values)``: mean and 95 % Student-t interval of a few runs' values (seeds).
"""

from __future__ import annotations

from dataclasses import dataclass


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(interval.low), float(interval.high))


def mcnemar(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant item is a fair coin."""
    discordant = int(gained) + int(lost)
    if discordant == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(gained), discordant, 0.5).pvalue)


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, low, high, sample std) — t with n−1 degrees of freedom, as few seeds need."""
    import numpy as np
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return (mean, float("nan"), float("nan"), float("nan"))
    std = float(x.std(ddof=1))
    half = float(t.ppf((1 + confidence) / 2, len(x) - 1)) * std / len(x) ** 0.5
    return (mean, mean - half, mean + half, std)


@dataclass(frozen=True)
class PairedComparison:
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float  # b - a
    interval: tuple[float, float]  # 95 % bootstrap interval of the difference
    gained: int  # wrong in a, right in b
    lost: int  # right in a, wrong in b
    p_value: float  # exact McNemar

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def bootstrap_interval(diff, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of per-item differences (items resampled)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_bootstrap(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> PairedComparison:
    """Compare two 0/1 score lists over the same items (same order)."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired scores need the same non-zero length, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = y - x
    low, high = bootstrap_interval(diff, resamples, seed, confidence)
    gained, lost = int(((x < 0.5) & (y >= 0.5)).sum()), int(((x >= 0.5) & (y < 0.5)).sum())
    return PairedComparison(n=len(diff), accuracy_a=float(x.mean()), accuracy_b=float(y.mean()),
                            difference=float(diff.mean()), interval=(float(low), float(high)),
                            gained=gained, lost=lost, p_value=mcnemar(gained, lost))


@dataclass(frozen=True)
class PairedRates:
    n: int
    mean_a: float
    mean_b: float
    difference: float  # b - a, mean over items
    interval: tuple[float, float]  # 95 % bootstrap interval of the difference (items resampled)
    better: int  # items whose rate is higher in b
    worse: int  # items whose rate is lower in b
    p_value: float  # paired permutation test (each item's two rates swapped at random)

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def paired_rates(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0,
                 confidence: float = 0.95) -> PairedRates:
    """Compare per-item rates in [0, 1] (e.g. the share of k samples that are right) over the
    same items: the samples of one item are not independent, so the unit is the item."""
    import numpy as np
    from scipy.stats import permutation_test

    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired rates need the same non-zero length, got {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = y - x
    low, high = bootstrap_interval(diff, resamples, seed, confidence)
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(permutation_test((x, y), lambda u, v, axis: np.mean(v - u, axis=axis), permutation_type="samples",
                                   n_resamples=resamples, vectorized=True, random_state=seed).pvalue)
    return PairedRates(n=len(diff), mean_a=float(x.mean()), mean_b=float(y.mean()), difference=float(diff.mean()),
                       interval=(float(low), float(high)), better=int((diff > 0).sum()), worse=int((diff < 0).sum()),
                       p_value=min(p, 1.0))
