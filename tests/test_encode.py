"""one_hot, predict, top_k: values, names, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, same_library, to_numpy

NAMES = ["cat", "dog", "tiger", "none"]


def test_one_hot(backend: Backend):
    labels = backend.asarray(np.array([[0, 3], [2, 1]]))
    result = sk.one_hot(labels, 4)
    assert same_library(result, backend)
    np.testing.assert_array_equal(to_numpy(result), np.eye(4)[[[0, 3], [2, 1]]])


def test_one_hot_defaults_and_dtypes():
    np.testing.assert_array_equal(sk.one_hot([1, 0]), [[0.0, 1.0], [1.0, 0.0]])
    assert sk.one_hot([1, 0]).dtype == np.float64
    assert sk.one_hot([1, 0], dtype=int).dtype == np.int64
    assert sk.one_hot([1, 0], dtype=bool).dtype == np.bool_
    assert sk.one_hot([1, 0], dtype=np.float32).dtype == np.float32
    assert sk.one_hot(np.array([], dtype=int)).shape == (0, 0)


def test_one_hot_round_trips_through_predict():
    labels = np.array([3, 0, 2, 2, 1])
    np.testing.assert_array_equal(sk.predict(sk.one_hot(labels, 5)), labels)


@pytest.mark.parametrize(("labels", "num_classes", "error"), [
    ([0, 4], 4, ValueError), ([-1], 3, ValueError), ([0.5], 3, TypeError), ([0], -2, ValueError),
])
def test_one_hot_errors(labels, num_classes, error):
    with pytest.raises(error):
        sk.one_hot(np.array(labels), num_classes)


def test_predict_with_and_without_labels(backend: Backend):
    z = backend.asarray(np.array([[1.25, 2.44, 0.78, 0.12], [3.2, 1.3, 0.2, 0.8]]))
    indices = sk.predict(z)
    assert same_library(indices, backend)
    np.testing.assert_array_equal(to_numpy(indices), [1, 0])
    np.testing.assert_array_equal(sk.predict(z, labels=NAMES), ["dog", "cat"])
    np.testing.assert_array_equal(to_numpy(sk.predict(z, axis=0)), [1, 0, 0, 1])


def test_predict_ties_take_the_first():
    assert sk.predict([0.5, 0.5]) == 0


def test_top_k(backend: Backend):
    z = backend.asarray(np.array([[0.1, 0.5, 0.2, 0.5], [0.4, 0.3, 0.2, 0.1]]))
    values, indices = sk.top_k(z, 3)
    assert same_library(values, backend) and same_library(indices, backend)
    np.testing.assert_array_equal(to_numpy(indices), [[1, 3, 2], [0, 1, 2]])  # ties: index order
    np.testing.assert_allclose(to_numpy(values), [[0.5, 0.5, 0.2], [0.4, 0.3, 0.2]])
    _, names = sk.top_k(z, 2, labels=NAMES)
    np.testing.assert_array_equal(names, [["dog", "none"], ["cat", "dog"]])
    _, indices0 = sk.top_k(z, 1, axis=0)
    np.testing.assert_array_equal(to_numpy(indices0), [[1, 0, 0, 0]])


def test_label_and_k_errors():
    z = np.zeros((2, 4))
    with pytest.raises(ValueError, match="4 classes"):
        sk.predict(z, labels=["a", "b"])
    for k in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            sk.top_k(z, k)
    with pytest.raises(ValueError, match="no classes"):
        sk.predict(np.zeros((2, 0)))
