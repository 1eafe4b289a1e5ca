"""SoftmaxRegression against scikit-learn's LogisticRegression: the same model, fit time and quality.

Both minimise the same objective with L-BFGS-B from zero with the same stopping rules, so the
iteration counts are close and the time per iteration compares the loss+gradient evaluations
(softmaxkit's fused ``cross_entropy`` vs scikit-learn's Cython multinomial loss). Fits are
interleaved, one warm-up each, median of ``--repeats``, both under the same BLAS/OpenMP thread
limit. Data: scikit-learn's bundled iris and digits (digits pixels scaled to [0, 1]) and a
generated 20,000 x 100, 10-class problem; a fixed stratified 75/25 split.

    python benchmarks/classify.py            # the table
    python benchmarks/classify.py --quick    # one repeat, small data: a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def datasets(quick: bool) -> dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]]:
    from sklearn.datasets import load_digits, load_iris, make_classification

    def digits() -> tuple[np.ndarray, np.ndarray]:
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y

    def generated() -> tuple[np.ndarray, np.ndarray]:
        n = 1_000 if quick else 20_000
        return make_classification(n_samples=n, n_features=100, n_informative=50, n_classes=10,
                                   n_clusters_per_class=1, random_state=0)

    return {"iris": lambda: load_iris(return_X_y=True), "digits": digits, "generated": generated}


def _fit(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would make the comparison moot
        model.fit(X, y)
    return time.perf_counter() - start


def compare(name: str, X: np.ndarray, y: np.ndarray, C: float, repeats: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split

    from softmaxkit import SoftmaxRegression

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    models = {"softmaxkit": SoftmaxRegression(C=C, max_iter=1000),
              "sklearn": LogisticRegression(C=C, max_iter=1000)}
    seconds: dict[str, list[float]] = {key: [] for key in models}
    for model in models.values():
        _fit(model, X_train, y_train)  # warm-up
    for _ in range(repeats):
        for key, model in models.items():  # interleaved, so drifts in load hit both
            seconds[key].append(_fit(model, X_train, y_train))
    row: dict[str, Any] = {"data": name, "shape": f"{X_train.shape[0]}x{X_train.shape[1]}",
                           "classes": len(np.unique(y)), "C": C}
    for key, model in models.items():
        row[f"{key} acc"] = accuracy_score(y_test, model.predict(X_test))
        row[f"{key} loss"] = log_loss(y_test, model.predict_proba(X_test))
        row[f"{key} iter"] = int(np.max(model.n_iter_))
        row[f"{key} s"] = statistics.median(seconds[key])
    return row


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| data | train n x d | K | C | accuracy ours / sklearn | log-loss ours / sklearn "
        "| iterations | fit ms ours / sklearn | time ratio | per-iteration ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours, theirs = r["softmaxkit s"], r["sklearn s"]
        per_iteration = (ours / r["softmaxkit iter"]) / (theirs / r["sklearn iter"])
        lines.append(
            f"| {r['data']} | {r['shape']} | {r['classes']} | {r['C']:g} "
            f"| {100 * r['softmaxkit acc']:.2f}% / {100 * r['sklearn acc']:.2f}% "
            f"| {r['softmaxkit loss']:.4f} / {r['sklearn loss']:.4f} "
            f"| {r['softmaxkit iter']} / {r['sklearn iter']} "
            f"| {1e3 * ours:.1f} / {1e3 * theirs:.1f} | {ours / theirs:.2f}x | {per_iteration:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads for both (default 1: steadiest on a shared machine; "
                             "0: each library's own defaults, as a user gets them)")
    parser.add_argument("--C", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one repeat, the first C, small generated data")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import softmaxkit
    from softmaxkit._engines import choose_engine

    repeats = 1 if args.quick else args.repeats
    Cs = args.C[:1] if args.quick else args.C
    rows = []
    with threadpool_limits(args.threads or None):
        for name, load in datasets(args.quick).items():
            X, y = load()
            for C in Cs:
                rows.append(compare(name, X, y, C, repeats))
            engine = choose_engine("cross_entropy", np.zeros((X.shape[0], len(np.unique(y)))))
            print(f"{name}: cross_entropy engine {engine.__name__}", file=sys.stderr)
    print(f"softmaxkit {softmaxkit.__version__}, scikit-learn {_version('sklearn')}, "
          f"numpy {np.__version__}; {args.threads or 'default'} thread(s), median of {repeats}")
    print(markdown(rows))
    return 0


def _version(module: str) -> str:
    import importlib

    return str(importlib.import_module(module).__version__)


if __name__ == "__main__":
    sys.exit(main())
