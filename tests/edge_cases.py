"""SPEC §2's edge-case table as data: one row per case, read by the tests of every engine.

Each case is a single row along the softmax axis with the exact expected outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

inf = math.inf
nan = math.nan


@dataclass(frozen=True)
class EdgeCase:
    name: str
    row: tuple[float, ...]
    softmax: tuple[float, ...]
    log_softmax: tuple[float, ...]
    logsumexp: float
    where: tuple[bool, ...] | None = None


LOG_HALF = math.log(0.5)
LOG_THIRD = math.log(1 / 3)

EDGE_CASES: tuple[EdgeCase, ...] = (
    EdgeCase("finite", (0.0, 0.0), (0.5, 0.5), (LOG_HALF, LOG_HALF), math.log(2.0)),
    EdgeCase("huge_finite", (1e38, 1e38), (0.5, 0.5), (LOG_HALF, LOG_HALF), 1e38),
    # log_softmax is -6e38: finite in float64, rounded to -inf in float32.
    EdgeCase("huge_spread", (3e38, -3e38), (1.0, 0.0), (0.0, -6e38), 3e38),
    EdgeCase("some_neg_inf", (0.0, -inf, 0.0), (0.5, 0.0, 0.5), (LOG_HALF, -inf, LOG_HALF), math.log(2.0)),
    EdgeCase("all_neg_inf", (-inf, -inf, -inf), (0.0, 0.0, 0.0), (-inf, -inf, -inf), -inf),
    EdgeCase("one_pos_inf", (1.0, inf, -inf), (0.0, 1.0, 0.0), (-inf, 0.0, -inf), inf),
    EdgeCase(
        "three_pos_inf",
        (inf, 5.0, inf, inf),
        (1 / 3, 0.0, 1 / 3, 1 / 3),
        (LOG_THIRD, -inf, LOG_THIRD, LOG_THIRD),
        inf,
    ),
    EdgeCase("nan", (1.0, nan, 2.0), (nan, nan, nan), (nan, nan, nan), nan),
    EdgeCase("nan_and_inf", (inf, nan, -inf), (nan, nan, nan), (nan, nan, nan), nan),
    EdgeCase(
        "masked",
        (1.0, 100.0, 1.0),
        (0.5, 0.0, 0.5),
        (LOG_HALF, -inf, LOG_HALF),
        math.log(2.0) + 1.0,
        where=(True, False, True),
    ),
    EdgeCase(
        "masked_nan_ignored",
        (nan, 2.0, 2.0),
        (0.0, 0.5, 0.5),
        (-inf, LOG_HALF, LOG_HALF),
        math.log(2.0) + 2.0,
        where=(False, True, True),
    ),
    EdgeCase(
        "all_masked",
        (1.0, 2.0, 3.0),
        (0.0, 0.0, 0.0),
        (-inf, -inf, -inf),
        -inf,
        where=(False, False, False),
    ),
    EdgeCase("single", (7.5,), (1.0,), (0.0,), 7.5),
    EdgeCase("empty", (), (), (), -inf),
)
