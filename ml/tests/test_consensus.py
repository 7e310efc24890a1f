"""STAPLE and majority-vote consensus (medloop_ml.consensus) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from medloop_ml.consensus import consensus, majority_vote, staple


def _square(size: int = 20, lo: int = 5, hi: int = 15) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_staple_follows_the_agreeing_annotators_and_scores_the_one_who_missed_a_column() -> None:
    truth = _square()  # 100 foreground pixels
    short = truth.copy()
    short[5:15, 14] = False  # misses 10 of the 100 pixels, marks nothing extra
    result = staple([truth, short, truth])
    assert np.array_equal(result.mask, truth)
    # Against the consensus (= truth): 90/100 found, every background pixel left alone.
    assert result.annotators[1].sensitivity == pytest.approx(0.9, abs=1e-3)
    assert result.annotators[1].specificity == pytest.approx(1.0, abs=1e-6)
    for agreeing in (result.annotators[0], result.annotators[2]):
        assert agreeing.sensitivity == pytest.approx(1.0, abs=1e-6)
        assert agreeing.specificity == pytest.approx(1.0, abs=1e-6)


def test_staple_gives_an_annotator_who_drew_nothing_zero_sensitivity() -> None:
    truth = _square()
    result = staple([truth, truth, np.zeros_like(truth)])
    assert np.array_equal(result.mask, truth)
    assert result.annotators[2].sensitivity == pytest.approx(0.0, abs=1e-6)
    assert result.annotators[2].specificity == pytest.approx(1.0, abs=1e-6)
    assert result.probability.shape == truth.shape
    assert result.probability.min() >= 0.0
    assert result.probability.max() <= 1.0


def test_majority_vote_keeps_pixels_most_annotators_mark_and_a_tie_is_background() -> None:
    a = _square()
    b = a.copy()
    b[5:15, 14] = False
    two = majority_vote([a, b])  # a tie on the column only a marks: background
    assert np.array_equal(two.mask, b)
    # a against the vote: all 90 found; its 10 extra pixels are false positives
    # among the 310 background pixels.
    assert two.annotators[0].sensitivity == pytest.approx(1.0)
    assert two.annotators[0].specificity == pytest.approx(300 / 310)
    three = majority_vote([a, b, a])
    assert np.array_equal(three.mask, a)
    assert three.annotators[1].sensitivity == pytest.approx(0.9)
    assert np.allclose(three.probability[5:15, 14], 2 / 3)


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least two"):
        staple([_square()])
    with pytest.raises(ValueError, match="of one size"):
        majority_vote([_square(20), _square(30)])
    with pytest.raises(ValueError, match='unknown consensus method "mean"'):
        consensus([_square(), _square()], "mean")  # type: ignore[arg-type]
