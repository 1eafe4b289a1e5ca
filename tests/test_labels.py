"""LabelIndex: arbitrary class labels to class indices and back, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import LabelIndex


def test_from_labels_sorts_the_distinct_labels():
    index = LabelIndex.from_labels(["dog", "cat", "dog", "none", "tiger"])
    assert index.classes.tolist() == ["cat", "dog", "none", "tiger"]
    assert len(index) == 4
    assert repr(index) == "LabelIndex(['cat', 'dog', 'none', 'tiger'])"


@pytest.mark.parametrize("classes", [["cat", "dog", "tiger"], ["tiger", "cat", "dog"], [10, -3, 7],
                                     [2.5, 0.5], [True, False]])
def test_encode_and_decode_round_trip_in_the_given_order(classes):
    index = LabelIndex(classes)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, len(classes), size=(4, 5))
    labels = np.asarray(classes)[codes]
    np.testing.assert_array_equal(index.encode(labels), codes)
    np.testing.assert_array_equal(index.decode(codes), labels)
    assert index.encode(labels).shape == (4, 5)


def test_encode_matches_the_order_of_the_classes_not_their_sorting():
    index = LabelIndex(["tiger", "cat", "dog"])
    assert index.encode(["cat", "tiger", "dog"]).tolist() == [1, 0, 2]


def test_it_indexes_the_columns_of_softmax_outputs():
    index = LabelIndex(["cat", "dog", "tiger", "none"])
    probs = sk.softmax([[1.25, 2.44, 0.78, 0.12], [3.2, 1.3, 0.2, 0.8]])
    assert index.decode(sk.predict(probs)).tolist() == ["dog", "cat"]
    assert sk.predict(probs, labels=index.classes).tolist() == ["dog", "cat"]
    loss = sk.cross_entropy(np.log(probs), index.encode(["dog", "cat"]), reduction="none")
    np.testing.assert_allclose(loss, -np.log(probs.max(axis=1)))


def test_one_hot_of_labels():
    np.testing.assert_array_equal(LabelIndex(["b", "a"]).one_hot(["a", "a", "b"]),
                                  [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert LabelIndex(["b", "a"]).one_hot(["a"], dtype=bool).dtype == np.bool_


def test_unknown_labels_are_named():
    index = LabelIndex(["cat", "dog"])
    with pytest.raises(ValueError, match=r"unknown label 'cow'; the 2 classes are 'cat', 'dog'"):
        index.encode(["cat", "cow"])
    with pytest.raises(ValueError, match=r"unknown labels 'ant', 'bee'"):
        index.encode(["bee", "ant", "bee"])
    with pytest.raises(ValueError, match="unknown labels 1, 2"):
        index.encode([1, 2])
    many = LabelIndex(list(range(10)))
    with pytest.raises(ValueError, match=r"the 10 classes are 0, 1, 2, 3, 4, \.\.\. \(10 in all\)"):
        many.encode([11])
    with pytest.raises(ValueError, match="unknown label 'a'; the 0 classes"):
        LabelIndex([]).encode(["a"])


def test_decode_rejects_bad_indices():
    index = LabelIndex(["cat", "dog"])
    with pytest.raises(ValueError, match="class index 2 is out of range for 2 classes"):
        index.decode([0, 2])
    with pytest.raises(ValueError, match="class index -1 is out of range"):
        index.decode([-1])
    with pytest.raises(TypeError, match="must be integers, got float64"):
        index.decode([0.0, 1.0])
    assert index.decode(np.array([], dtype=float)).shape == (0,)


@pytest.mark.parametrize(("classes", "error", "message"), [
    (["a", "b", "a"], ValueError, "distinct; repeated: 'a'"),
    ([["a", "b"]], ValueError, "must be 1-D"),
    (np.array(["a", 1], dtype=object), TypeError, "mutually comparable"),
])
def test_bad_classes(classes, error, message):
    with pytest.raises(error, match=message):
        LabelIndex(classes)


def test_equality():
    assert LabelIndex(["a", "b"]) == LabelIndex.from_labels(["b", "a", "a"])
    assert LabelIndex(["a", "b"]) != LabelIndex(["b", "a"])
    assert LabelIndex(["a", "b"]) != LabelIndex(["a", "b", "c"])
