"""A leak from the first minute, found during the warm-up grace: a warm-up saturates, a leak does not.

The leak rule judges no window that reaches into the warm-up after a start (ALERT_LEAK_GRACE_MINUTES),
so a leak present from the start used to be found only after the grace and a whole window (91
minutes at 60 MiB/h). Here the samples since the start are fitted twice: by a saturating curve
(a level approached exponentially, `a + c·e^(-t/τ)`, as caches and pools fill) and by the same curve
plus a straight rise (`+ b·t`); only time constants the window has seen saturate are tried (τ up to a
third of it). A leak is a rise `b` that clears the minimum rate, stands well above the noise of the
fit, and explains what the saturating curve alone cannot. Spikes are taken out first, as for the
other windows. Tuned on the alert-quality benchmark's warm-ups; costs ~2 ms per check (80 samples), until the
short window is judged after the grace only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from polly.formatting import MIB
from polly.trend import LEAK_MIN_T, SPIKE_FILTER, LeakEvidence, RssPoint, running_median

MIN_MINUTES = 36.0  # before it: a warm-up of time constant 12 min cannot yet be told from a rise
TAU_MINUTES = (3.0, 4.5, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0)
MIN_EXPLAINED = 0.5  # the rise must halve what the saturating curve leaves unexplained


def _solve(rows: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination on a small system; None when singular."""
    n = len(rhs)
    m = [[*row, rhs[i]] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def _fit(columns: list[list[float]], ys: list[float]) -> tuple[list[float], float, list[list[float]]] | None:
    """Least squares on the given columns: coefficients, residual sum of squares, normal matrix."""
    k = len(columns)
    normal = [[sum(a * b for a, b in zip(columns[i], columns[j], strict=True)) for j in range(k)] for i in range(k)]
    right = [sum(a * y for a, y in zip(columns[i], ys, strict=True)) for i in range(k)]
    coefficients = _solve(normal, right)
    if coefficients is None:
        return None
    residual = sum(
        (y - sum(c * col[n] for c, col in zip(coefficients, columns, strict=True))) ** 2 for n, y in enumerate(ys)
    )
    return coefficients, residual, normal


def warmup_leak_evidence(points: Sequence[RssPoint], started_at: float) -> LeakEvidence | None:
    """What the samples since `started_at` say of a leak under the warm-up (None: too few yet)."""
    since = [p for p in points if p[0] >= started_at]
    if len(since) < 8:
        return None
    span_min = (since[-1][0] - since[0][0]) / 60
    if span_min < MIN_MINUTES:
        return None
    ts = [(p[0] - since[0][0]) / 60 for p in since]  # minutes
    ys = running_median([p[1] / MIB for p in since], SPIKE_FILTER)
    ones = [1.0] * len(ts)
    curve_only = math.inf  # the best saturating curve alone, over the time constants tried
    best: tuple[float, float, float] | None = None  # the best curve plus a rise: residual, slope/min, t
    for tau in (t for t in TAU_MINUTES if t <= span_min / 3):
        decay = [math.exp(-t / tau) for t in ts]
        curve = _fit([ones, decay], ys)
        both = _fit([ones, ts, decay], ys)
        if curve is None or both is None or len(ts) <= 3:
            continue
        curve_only = min(curve_only, curve[1])
        (_, slope, _), residual, normal = both
        column = _solve(normal, [0.0, 1.0, 0.0])  # the slope's column of the inverse normal matrix
        if column is None:
            continue
        stderr = math.sqrt(max(residual / (len(ts) - 3) * column[1], 1e-18))
        if best is None or residual < best[0]:
            best = (residual, slope, slope / stderr)
    if best is None:
        return None
    residual, slope_per_min, t_value = best
    # the rise must explain what no saturating curve can: else the warm-up is the explanation
    if curve_only <= 0 or 1 - residual / curve_only < MIN_EXPLAINED:
        slope_per_min = 0.0
    return LeakEvidence(span_min * 60, slope_per_min * 60, t_value, steady=slope_per_min > 0 and t_value >= LEAK_MIN_T)
