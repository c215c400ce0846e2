"""The export check's comparison of detections as sets: ties in score may
come in any order and detections at the score threshold or the
``max_per_img`` cut on one side only, but another box, score or label is a
failure.

Detections made up here (numpy, no model): what PyTorch and an engine
return, with the engine's output reordered or perturbed.
"""
import numpy as np
import pytest

from mmfasternet.deploy.detection_matching import (Detections,
                                                   compare_end2end_outputs,
                                                   match_detections)

BOX_TOL = 0.01
SCORE_TOL = 1e-4


def detections(count: int = 8, seed: int = 0) -> Detections:
    """``count`` detections by descending score, two of them (3 and 4)
    with scores 3e-8 apart and different labels, as in the export that
    failed."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, (count, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 100, (count, 2))], 1)
    scores = np.sort(rng.uniform(0.2, 0.9, count))[::-1].copy()
    scores[4] = scores[3] - 3e-8
    labels = rng.integers(0, 80, count)
    labels[4] = (labels[3] + 1) % 80
    return Detections(
        boxes.astype(np.float32), scores.astype(np.float32), labels)


def reordered(dets: Detections, order) -> Detections:
    return Detections(*(a[order] for a in dets))


def match(expected: Detections, actual: Detections, **kwargs):
    return match_detections(expected, actual, BOX_TOL, SCORE_TOL, **kwargs)


def test_equal_score_swap_passes():
    """Positions 3 and 4 swapped: position by position their labels
    differ; as sets every detection has its partner."""
    ref = detections()
    order = np.arange(8)
    order[[3, 4]] = [4, 3]
    got = reordered(ref, order)
    assert not np.array_equal(ref.labels, got.labels)
    found = match(ref, got)
    assert found.ok
    assert (found.matched, found.boundary, found.unmatched) == (8, 0, 0)
    assert found.box_error == 0 and found.score_error == 0
    assert sorted(map(tuple,
                      found.pairs)) == [(i, int(np.flatnonzero(order == i)[0]))
                                        for i in range(8)]


def test_small_differences_within_tolerance_pass_and_are_reported():
    ref = detections()
    got = Detections(ref.boxes + 0.004, ref.scores - 5e-5, ref.labels)
    found = match(ref, got)
    assert found.ok and found.matched == 8
    assert found.box_error == pytest.approx(0.004, rel=1e-3)
    assert found.score_error == pytest.approx(5e-5, rel=1e-2)
    assert '8/8 matched (8 from the engine), max box error 4.0e-03 px' in \
        found.describe()


@pytest.mark.parametrize('field', ['boxes', 'scores', 'labels'])
def test_perturbed_engine_output_fails(field):
    """One detection's box moved by 0.5 px, its score changed by 0.01, or
    its label changed: it and its reference are unpaired."""
    ref = detections()
    arrays = ref._asdict()
    changed = arrays[field].copy()
    if field == 'boxes':
        changed[2, 1] += 0.5
    elif field == 'scores':
        changed[2] -= 0.01
    else:
        changed[2] = (changed[2] + 7) % 80
    got = Detections(**dict(arrays, **{field: changed}))
    found = match(ref, got, score_thr=0.05, max_per_img=100)
    assert not found.ok
    assert (found.matched, found.unmatched) == (7, 2)
    assert 'UNMATCHED' in found.describe()


def test_missing_or_extra_detection_fails():
    ref = detections()
    assert match(ref, reordered(ref, np.arange(7))).unmatched == 1
    extra = reordered(ref, [0, 1, 2, 3, 4, 5, 6, 7, 0])
    extra.boxes[8] += 50
    assert match(ref, extra).unmatched == 1


def test_one_side_only_at_the_score_threshold():
    """A detection scoring within the tolerance of ``score_thr`` may be
    missing from the other side; the same one scoring higher may not."""
    ref = detections()
    ref.scores[7] = 0.05 + 2e-5
    found = match(ref, reordered(ref, np.arange(7)), score_thr=0.05)
    assert found.ok and (found.matched, found.boundary) == (7, 1)
    assert 'on one side only' in found.describe()
    ref.scores[7] = 0.05 + 2e-3
    found = match(ref, reordered(ref, np.arange(7)), score_thr=0.05)
    assert not found.ok and found.unmatched == 1


def test_one_side_only_at_the_max_per_img_cut():
    """Both lists full (``max_per_img`` = 8): the engine kept another
    detection than PyTorch at the lowest score; anywhere else, or with
    lists that are not full, that is a difference."""
    ref = detections()
    got = reordered(ref, np.arange(8))
    got.boxes[7] += 40
    got.labels[7] = (got.labels[7] + 1) % 80
    got.scores[7] += 3e-8
    found = match(ref, got, max_per_img=8)
    assert found.ok and (found.matched, found.boundary) == (7, 2)
    assert not match(ref, got, max_per_img=9).ok
    got = reordered(ref, np.arange(8))
    got.boxes[5] += 40
    assert not match(ref, got, max_per_img=8).ok


def test_pairing_takes_the_most_pairs():
    """Two boxes of one label close together: pairing the first reference
    with its nearest engine box would leave the second without a partner;
    the assignment pairs all."""
    ref = Detections(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10.008]], np.float32),
        np.array([0.5, 0.5], np.float32), np.array([1, 1]))
    got = Detections(
        np.array([[0, 0, 10, 10.004], [0, 0, 10, 9.995]], np.float32),
        np.array([0.5, 0.5], np.float32), np.array([1, 1]))
    found = match(ref, got)
    assert found.ok and found.matched == 2
    assert sorted(map(tuple, found.pairs)) == [(0, 1), (1, 0)]


def graph_outputs(per_image, masks: bool = False) -> list:
    """An end-to-end graph's outputs for images' detections."""
    batch_index = np.concatenate(
        [np.full(len(d.scores), b) for b, d in enumerate(per_image)])
    outputs = [batch_index] + [
        np.concatenate([d[k] for d in per_image]) for k in range(3)
    ]
    if masks:
        rng = np.random.default_rng(1)
        outputs.append(rng.normal(size=(len(batch_index), 6, 6)))
    return outputs


def test_end2end_outputs_are_matched_per_image():
    """The random-input check's comparison (relative tolerance): a batch
    of two images in another order passes; a detection moved to the other
    image, or a paired detection's mask changed, fails."""
    images = [detections(8, seed=0), detections(5, seed=1)]
    expected = graph_outputs(images, masks=True)
    order = np.array([1, 0, 2, 4, 3, 5, 6, 7, 9, 8, 10, 11, 12])
    actual = [out[order] for out in expected]
    error, found = compare_end2end_outputs(expected, actual, 2, 1e-4)
    assert error == 0 and found.matched == 13 and found.ok
    moved = [out.copy() for out in actual]
    moved[0][0] = 1
    error, found = compare_end2end_outputs(expected, moved, 2, 1e-4)
    assert error == float('inf') and found.unmatched == 2
    other_mask = [out.copy() for out in actual]
    other_mask[4][3] += 0.1
    error, found = compare_end2end_outputs(expected, other_mask, 2, 1e-4)
    assert found.ok and error > 1e-4
