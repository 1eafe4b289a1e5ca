"""``SoftmaxRegression``: one dense layer and a softmax, trained as a scikit-learn classifier.

The model is the last layer of the seeds' classifier, ``z = W x + b``, ``p = softmax(z)``,
fitted by minimising the L2-penalised cross-entropy with L-BFGS. Every objective evaluation
is one matrix product and one call of :func:`softmaxkit.cross_entropy` with
``return_grad=True``, which yields the loss and ``dloss/dz`` from the same pass; the gradient
with respect to ``W`` and ``b`` follows by the chain rule.

Requires the ``classify`` extra (scikit-learn and SciPy).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

try:
    from scipy import optimize, sparse
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
    from threadpoolctl import threadpool_limits
except ImportError as exc:  # say which extra brings the missing package
    raise ModuleNotFoundError(
        f'SoftmaxRegression needs the classify extra: pip install "softmaxkit[classify]" ({exc})',
        name=exc.name,
    ) from exc

from softmaxkit._api import cross_entropy, log_softmax, predict, softmax
from softmaxkit.labels import LabelIndex

_SPARSE_FORMATS = ("csr", "csc")


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression: ``predict_proba(X) = softmax(X @ coef_.T + intercept_)``.

    Minimises, over ``W = coef_`` and ``b = intercept_``, scikit-learn's
    ``LogisticRegression`` objective (L2 penalty, multinomial loss)::

        (sum_i s_i * CE(softmax(W x_i + b), y_i) + ||W||² / (2 C)) / sum_i s_i

    with sample weights ``s_i`` (1 by default); the intercept is not penalised. Dividing by the
    total weight does not move the minimum but makes ``tol`` independent of the number of
    samples, exactly as in scikit-learn, so the same ``C`` and ``tol`` give the same model.

    Parameters
    ----------
    C : float, default=1.0
        Inverse strength of the L2 penalty, ``> 0``; ``numpy.inf`` means no penalty.
    fit_intercept : bool, default=True
        Learn a per-class intercept ``b`` (not penalised).
    tol : float, default=1e-4
        L-BFGS stops when the largest gradient component falls below it.
    max_iter : int, default=100
        L-BFGS iterations at most; a :class:`~sklearn.exceptions.ConvergenceWarning` says when
        they run out before ``tol`` is reached.
    warm_start : bool, default=False
        Start from the previous fit's ``coef_`` and ``intercept_`` (the data must have the
        same classes and features) instead of from zero.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any comparable type, e.g. strings), sorted.
    coef_ : ndarray of shape (n_classes, n_features)
        ``W``: one row per class, also when there are only two classes.
    intercept_ : ndarray of shape (n_classes,)
        ``b`` (zeros without ``fit_intercept``).
    n_iter_ : int
        L-BFGS iterations of the last fit.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    With two classes ``decision_function`` returns, as scikit-learn's binary classifiers do,
    one score per sample, ``z_1 - z_0``, positive for ``classes_[1]``; ``predict_proba`` still
    has two columns. A softmax over two classes with the penalty ``||W||² / (2 C)`` equals
    scikit-learn's binary logistic regression at ``2 C``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import SoftmaxRegression
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.1, 0.9], [0.9, 0.2], [0.8, 0.9]])
    >>> y = np.array(["cat", "dog", "tiger", "cat", "dog", "tiger"])
    >>> model = SoftmaxRegression(C=10.0).fit(X, y)
    >>> model.classes_
    array(['cat', 'dog', 'tiger'], dtype='<U5')
    >>> model.predict([[0.0, 0.8], [1.0, 1.0]])
    array(['cat', 'tiger'], dtype='<U5')
    >>> model.predict_proba([[0.0, 0.8]]).round(2)
    array([[0.86, 0.06, 0.08]])
    """

    def __init__(
        self, C: float = 1.0, *, fit_intercept: bool = True, tol: float = 1e-4, max_iter: int = 100,
        warm_start: bool = False,
    ) -> None:
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SoftmaxRegression:
        """Fit the model to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``sample_weight`` (n_samples,), non-negative, weighs each sample's loss: an integer
        weight ``k`` is the same as repeating the row ``k`` times.
        """
        self._check_parameters()
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE_FORMATS, dtype=np.float64)
        check_classification_targets(y)
        classes = LabelIndex.from_labels(y)
        if len(classes) < 2:
            raise ValueError(f"SoftmaxRegression needs samples of at least 2 classes; the data "
                             f"contains only one class: {classes.classes[0].item()!r}")
        weights = _sample_weights(sample_weight, X.shape[0])
        start = self._starting_point(classes, X.shape[1])
        objective = _Objective(X, classes.encode(y), weights, 1.0 / float(self.C),
                               bool(self.fit_intercept))
        # L-BFGS-B with scikit-learn's settings for this solver, so that the same tol and
        # max_iter stop at the same place. BLAS on one thread: its idle threads spin after each
        # product and take the cores from the cross_entropy kernels' threads (15,000 x 100,
        # 10 classes, 2 cores: 3.3 s with OpenBLAS's default 2 threads, 1.0 s with 1).
        with threadpool_limits(limits=1, user_api="blas"):
            result = optimize.minimize(
                objective, start.ravel(), method="L-BFGS-B", jac=True,
                options={"maxiter": int(self.max_iter), "maxls": 50, "gtol": float(self.tol),
                         "ftol": 64 * np.finfo(float).eps},
            )
        if not result.success:
            warnings.warn(
                f"SoftmaxRegression: L-BFGS stopped before converging after {result.nit} "
                f"iteration(s) ({result.message}). Increase max_iter (now {self.max_iter}) or "
                "scale the features (e.g. sklearn.preprocessing.StandardScaler).",
                ConvergenceWarning, stacklevel=2,
            )
        params = result.x.reshape(len(classes), -1)
        self.classes_ = classes.classes
        self.coef_ = np.ascontiguousarray(params[:, :-1])
        self.intercept_ = params[:, -1].copy()
        self.n_iter_ = int(result.nit)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits ``X @ coef_.T + intercept_``, shape (n_samples, n_classes).

        With two classes, ``z_1 - z_0`` of shape (n_samples,), as scikit-learn's binary
        classifiers return.
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each sample."""
        return predict(self._logits(X), labels=self.classes_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        return softmax(self._logits(X))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-probabilities, computed as ``log_softmax`` (finite where probabilities underflow)."""
        return log_softmax(self._logits(X))

    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=_SPARSE_FORMATS, dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def _check_parameters(self) -> None:
        for flag in ("fit_intercept", "warm_start"):  # "no" would otherwise count as true
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"SoftmaxRegression: {flag} must be True or False, "
                                f"got {getattr(self, flag)!r}")
        if not _is_real(self.C) or not self.C > 0:
            raise ValueError(f"SoftmaxRegression: C must be a number > 0, got {self.C!r}")
        if not _is_real(self.tol) or not 0 <= self.tol < np.inf:
            raise ValueError(f"SoftmaxRegression: tol must be a finite number >= 0, got {self.tol!r}")
        if (not isinstance(self.max_iter, numbers.Integral) or isinstance(self.max_iter, bool)
                or self.max_iter < 1):
            raise ValueError(f"SoftmaxRegression: max_iter must be an int >= 1, got {self.max_iter!r}")

    def _starting_point(self, classes: LabelIndex, n_features: int) -> np.ndarray:
        """``[W | b]`` to start from: zeros, or with ``warm_start`` the previous fit."""
        start = np.zeros((len(classes), n_features + 1))
        if not (self.warm_start and hasattr(self, "coef_")):
            return start
        if classes != LabelIndex(self.classes_) or self.coef_.shape[1] != n_features:
            raise ValueError(
                f"SoftmaxRegression: warm_start needs the previous fit's classes and features; it had "
                f"classes {self.classes_.tolist()} and {self.coef_.shape[1]} features, this data has "
                f"{classes.classes.tolist()} and {n_features} features"
            )
        start[:, :-1] = self.coef_
        start[:, -1] = self.intercept_ if self.fit_intercept else 0.0
        return start


class _Objective:
    """The penalised, weight-normalised loss of ``[W | b]`` and its gradient, for L-BFGS."""

    def __init__(self, X: Any, codes: np.ndarray, weights: np.ndarray | None, alpha: float,
                 fit_intercept: bool) -> None:
        self.X = X
        self.codes = codes
        self.weights = weights
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.total = float(X.shape[0] if weights is None else weights.sum())

    def __call__(self, flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = flat.reshape(-1, self.X.shape[1] + 1)
        W, b = params[:, :-1], params[:, -1]
        logits = np.asarray(self.X @ W.T)
        if self.fit_intercept:
            logits += b
        if self.weights is None:
            loss, dlogits = cross_entropy(logits, self.codes, reduction="sum", return_grad=True)
        else:
            # Per-sample losses and gradients from the same single pass, then weighted.
            losses, dlogits = cross_entropy(logits, self.codes, reduction="none", return_grad=True)
            loss = self.weights @ losses
            dlogits *= self.weights[:, None]
        grad = np.empty_like(params)
        if sparse.issparse(self.X):
            grad[:, :-1] = (self.X.T @ dlogits).T
        else:
            np.matmul(dlogits.T, self.X, out=grad[:, :-1])
        grad[:, :-1] += self.alpha * W
        grad[:, -1] = dlogits.sum(axis=0) if self.fit_intercept else 0.0
        value = float(loss) + 0.5 * self.alpha * float(np.vdot(W, W))
        return value / self.total, grad.ravel() / self.total


def _sample_weights(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not weights.sum() > 0:
        raise ValueError("sample_weight is zero for every sample: there is nothing to fit")
    return weights


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
