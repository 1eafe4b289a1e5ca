"""SoftmaxRegression: scikit-learn's estimator contract, parity with LogisticRegression, options."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import optimize, sparse
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxkit import SoftmaxRegression
from softmaxkit.classify import _Objective


# max_iter=1000: check_non_transformer_estimators_n_iter fits the unscaled iris data, which takes
# 107 L-BFGS iterations (scikit-learn's own LogisticRegression needs 111 and warns at its
# default of 100 too); with -W error the ConvergenceWarning would fail that check.
@parametrize_with_checks([SoftmaxRegression(max_iter=1000)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _split(name):
    """A fixed, stratified 75/25 split; digits pixels scaled from 0..16 to [0, 1].

    Unscaled digits are so ill-conditioned that at the default tol both solvers stop short of
    the minimum, at different places (296 vs 455 iterations at C=0.1, test log-loss 0.1097 vs
    0.1063; at tol=1e-6 they agree to 1e-4): that would compare stopping points, not models.
    """
    X, y = {"digits": load_digits, "iris": load_iris}[name](return_X_y=True)
    if name == "digits":
        X = X / 16.0
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.mark.parametrize("name", ["digits", "iris"])
@pytest.mark.parametrize("C", [0.1, 1.0])
def test_parity_with_logistic_regression(name, C):
    X_train, X_test, y_train, y_test = _split(name)
    ours = SoftmaxRegression(C=C, max_iter=1000).fit(X_train, y_train)
    theirs = LogisticRegression(C=C, max_iter=1000).fit(X_train, y_train)
    ours_accuracy = accuracy_score(y_test, ours.predict(X_test))
    theirs_accuracy = accuracy_score(y_test, theirs.predict(X_test))
    assert abs(ours_accuracy - theirs_accuracy) <= 0.005
    ours_loss = log_loss(y_test, ours.predict_proba(X_test))
    theirs_loss = log_loss(y_test, theirs.predict_proba(X_test))
    assert abs(ours_loss - theirs_loss) <= 0.01 * theirs_loss


def test_same_minimum_as_logistic_regression_at_tight_tolerance():
    # The objectives are the same function (penalty scaling included), so the minimisers agree.
    X_train, _, y_train, _ = _split("iris")
    ours = SoftmaxRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X_train, y_train)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X_train, y_train)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_ - ours.intercept_.mean(),
                               theirs.intercept_ - theirs.intercept_.mean(), atol=1e-5)


def _problem(n=120, n_features=5, n_classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=3,
                               n_redundant=0, n_classes=n_classes, random_state=seed)
    return X, y


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_gradient_matches_finite_differences(weighted, fit_intercept):
    X, y = _problem(n=40)
    weights = np.random.default_rng(1).uniform(0.0, 3.0, len(y)) if weighted else None
    objective = _Objective(X, y, weights, alpha=0.7, fit_intercept=fit_intercept)
    point = np.random.default_rng(2).normal(size=3 * (X.shape[1] + 1))
    if not fit_intercept:
        point[X.shape[1]::X.shape[1] + 1] = 0.0
    error = optimize.check_grad(lambda p: objective(p)[0], lambda p: objective(p)[1], point)
    assert error < 1e-6 * max(1.0, np.linalg.norm(objective(point)[1]))


def test_string_labels_give_the_same_model_as_integer_labels():
    X, y = _problem()
    names = np.array(["setosa", "versicolor", "virginica"])
    by_index = SoftmaxRegression().fit(X, y)
    by_name = SoftmaxRegression().fit(X, names[y])
    assert by_name.classes_.tolist() == names.tolist()
    np.testing.assert_array_equal(by_name.predict(X), names[by_index.predict(X)])
    np.testing.assert_allclose(by_name.predict_proba(X), by_index.predict_proba(X))


def test_classes_are_sorted_and_columns_follow_them():
    X, y = _problem()
    labels = np.array(["c", "a", "b"])[y]
    model = SoftmaxRegression().fit(X, labels)
    assert model.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(model.classes_[model.predict_proba(X).argmax(axis=1)],
                                  model.predict(X))


def test_integer_sample_weights_equal_repeated_rows():
    X, y = _problem(n=60)
    counts = np.random.default_rng(3).integers(0, 4, len(y))
    counts[:3] = 1  # keep every class present
    tight = dict(tol=1e-10, max_iter=10_000)
    weighted = SoftmaxRegression(**tight).fit(X, y, sample_weight=counts)
    repeated = SoftmaxRegression(**tight).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-6)


def test_unit_sample_weights_equal_no_weights():
    X, y = _problem()
    plain = SoftmaxRegression().fit(X, y)
    ones = SoftmaxRegression().fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(plain.coef_, ones.coef_, rtol=1e-12, atol=1e-12)


def test_sparse_input_gives_the_dense_model():
    X, y = _problem()
    X[np.abs(X) < 0.8] = 0.0
    dense = SoftmaxRegression().fit(X, y)
    for convert in (sparse.csr_matrix, sparse.csc_array):
        fitted = SoftmaxRegression().fit(convert(X), y)
        np.testing.assert_allclose(fitted.coef_, dense.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fitted.predict_proba(convert(X)), dense.predict_proba(X),
                                   rtol=1e-10)


def test_warm_start_continues_from_the_previous_fit():
    X, y = _problem()
    cold = SoftmaxRegression(tol=1e-8, max_iter=1000).fit(X, y)
    warm = SoftmaxRegression(tol=1e-8, max_iter=3, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X, y)
    warm.set_params(max_iter=1000).fit(X, y)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-5)
    # Already at the minimum: a further warm fit has nothing left to do.
    assert warm.fit(X, y).n_iter_ <= 2 < cold.n_iter_


def test_without_warm_start_every_fit_starts_from_zero():
    X, y = _problem()
    model = SoftmaxRegression(tol=1e-8, max_iter=1000)
    first = model.fit(X, y).n_iter_
    assert model.fit(X, y).n_iter_ == first


def test_warm_start_with_other_classes_is_an_error():
    X, y = _problem()
    model = SoftmaxRegression(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start needs the previous fit's classes"):
        model.fit(X, y + 1)
    with pytest.raises(ValueError, match=r"this data has .* and 4 features"):
        model.fit(X[:, :4], y)


def test_convergence_warning_when_max_iter_runs_out():
    X, y = _problem()
    with pytest.warns(ConvergenceWarning, match=r"max_iter \(now 2\)"):
        model = SoftmaxRegression(max_iter=2).fit(X, y)
    assert model.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegression(max_iter=1000).fit(X, y)


def test_fit_intercept_false_leaves_zero_intercepts():
    X, y = _problem()
    model = SoftmaxRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_array_equal(model.intercept_, np.zeros(3))
    np.testing.assert_allclose(model.decision_function(X), X @ model.coef_.T)


def test_no_penalty_with_infinite_C():
    X, y = _problem(n=300)
    free = SoftmaxRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(X, y)
    theirs = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(free.coef_, theirs.coef_, atol=1e-4)
    penalised = SoftmaxRegression(C=0.01).fit(X, y)
    assert np.linalg.norm(free.coef_) > 2 * np.linalg.norm(penalised.coef_)


def test_two_classes_decision_function_is_the_logit_difference():
    X, y = _problem(n_classes=2)
    model = SoftmaxRegression().fit(X, y)
    assert model.coef_.shape == (2, X.shape[1])
    decision = model.decision_function(X)
    assert decision.shape == (len(y),)
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-decision)), model.predict_proba(X)[:, 1])
    # Two-class softmax at C is binary logistic regression at 2 C.
    binary = LogisticRegression(C=2.0, tol=1e-10, max_iter=1000).fit(X, y)
    refit = SoftmaxRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(refit.coef_[1] - refit.coef_[0], binary.coef_[0], atol=1e-5)


def test_predict_log_proba_stays_finite_where_probabilities_underflow():
    X, y = _problem()
    model = SoftmaxRegression(C=np.inf, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    far = 1e4 * X[:5]
    assert np.any(model.predict_proba(far) == 0.0)
    log_proba = model.predict_log_proba(far)
    assert np.all(np.isfinite(log_proba))
    np.testing.assert_allclose(np.exp(log_proba), model.predict_proba(far), atol=1e-300)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(C=0.0), "C must be a number > 0"),
        (dict(C=-1.0), "C must be a number > 0"),
        (dict(C=float("nan")), "C must be a number > 0"),
        (dict(tol=-1e-3), "tol must be a finite number >= 0"),
        (dict(max_iter=0), "max_iter must be an int >= 1"),
        (dict(max_iter=10.5), "max_iter must be an int >= 1"),
    ],
)
def test_bad_parameters_are_named(params, message):
    X, y = _problem()
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(**params).fit(X, y)


def test_data_errors_are_clear():
    X, y = _problem()
    with pytest.raises(ValueError, match=r"at least 2 classes.*only one class: 'a'"):
        SoftmaxRegression().fit(X, np.full(len(y), "a"))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(120,\)"):
        SoftmaxRegression().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        SoftmaxRegression().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="zero for every sample"):
        SoftmaxRegression().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        SoftmaxRegression().fit(X, np.linspace(0, 1, len(y)))
    with pytest.raises(NotFittedError):
        SoftmaxRegression().predict(X)
    model = SoftmaxRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but SoftmaxRegression is expecting 5"):
        model.predict(X[:, :4])


def test_unknown_attribute_is_an_attribute_error():
    import softmaxkit

    with pytest.raises(AttributeError, match="no attribute 'SoftmaxRegresion'"):
        softmaxkit.SoftmaxRegresion  # noqa: B018


def test_benchmark_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "classify.py"
    spec = importlib.util.spec_from_file_location("classify_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--quick"]) == 0
    table = capsys.readouterr().out
    assert [line.split(" | ")[0] for line in table.splitlines()[3:]] == ["| iris", "| digits",
                                                                         "| generated"]
    assert "| digits | 1347x64 | 10 | 1 |" in table
