"""Detections of an engine against PyTorch's, compared as sets.

Two runs of the same detector list the same detections, but not always in
the same order: NMS and ``max_per_img`` sort by score, and two detections
whose scores differ by 1e-8 may come in either order from two engines.
Position by position, their labels then differ and a correct file looks
broken. Here each image's detections are paired instead: a pair has the
same label, every box coordinate within ``box_tol`` and scores within
``score_tol``, and the pairing with the most pairs is taken (an
assignment problem, solved exactly).

A detection left without a partner is a real difference, unless its score
is within ``score_tol`` of a place where a tiny score change decides
whether it is kept: the score threshold, or the lowest kept score of a
list that ``max_per_img`` cut (a full list). Those may be on one side
only and are counted apart.
"""
from typing import Iterable, List, NamedTuple, Optional, Sequence

import numpy as np


class Detections(NamedTuple):
    """One image's detections, numpy arrays."""
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,)

    @classmethod
    def of(cls, instances) -> 'Detections':
        """From mmdet ``pred_instances`` (or anything with ``bboxes``,
        ``scores``, ``labels``), tensors or arrays."""
        return cls(*(np.asarray(getattr(instances, k)).reshape(shape)
                     for k, shape in (('bboxes', (-1, 4)), ('scores', (-1, )),
                                      ('labels', (-1, )))))


class DetectionMatch(NamedTuple):
    """How two sets of detections correspond (one image or many)."""
    expected: int  # detections of the reference (PyTorch)
    actual: int  # detections of the engine
    matched: int  # pairs found
    boundary: int  # unpaired, at the score threshold or max_per_img cut
    unmatched: int  # unpaired elsewhere: real differences
    box_error: float  # largest box coordinate difference of a pair
    score_error: float  # largest score difference of a pair
    #: (K, 2) indices (expected, actual) of the pairs, for one image;
    #: None once images are merged.
    pairs: Optional[np.ndarray] = None

    @property
    def ok(self) -> bool:
        """Every detection paired, except at the boundaries."""
        return self.unmatched == 0

    def describe(self) -> str:
        """One line: counts and worst errors (boxes in pixels)."""
        text = (f'{self.matched}/{self.expected} matched ({self.actual} from '
                'the engine')
        if self.boundary:
            text += (f', {self.boundary} on one side only at the score '
                     'threshold or max_per_img cut')
        if self.unmatched:
            text += f', {self.unmatched} UNMATCHED'
        return (f'{text}), max box error {self.box_error:.1e} px, max score '
                f'error {self.score_error:.1e}')


def match_detections(expected: Detections,
                     actual: Detections,
                     box_tol: float,
                     score_tol: float,
                     score_thr: Optional[float] = None,
                     max_per_img: Optional[int] = None) -> DetectionMatch:
    """Pair one image's detections of two runs.

    Args:
        expected (Detections): The reference (PyTorch).
        actual (Detections): The engine's.
        box_tol (float): Largest accepted difference of a box coordinate.
        score_tol (float): Largest accepted score difference.
        score_thr (float, optional): The detector's score threshold: a
            detection scoring within ``score_tol`` of it may be unpaired.
            Default: None (no threshold).
        max_per_img (int, optional): The detector's ``max_per_img``: in a
            list that long, detections scoring within ``score_tol`` of its
            lowest score may be unpaired. Default: None.

    Returns:
        DetectionMatch: Counts, worst errors of the pairs, and the pairs.
    """
    expected, actual = _as_arrays(expected), _as_arrays(actual)
    n, m = len(expected.scores), len(actual.scores)
    box_err = np.zeros((n, m))
    score_err = np.zeros((n, m))
    if n and m:
        box_err = np.abs(expected.boxes[:, None].astype(np.float64) -
                         actual.boxes[None].astype(np.float64)).max(-1)
        score_err = np.abs(expected.scores[:, None].astype(np.float64) -
                           actual.scores[None].astype(np.float64))
    feasible = ((expected.labels[:, None] == actual.labels[None])
                & (box_err <= box_tol) & (score_err <= score_tol))
    pairs = _most_pairs(feasible, box_err, score_err, box_tol, score_tol)
    cuts = [] if score_thr is None else [float(score_thr)]
    for dets in (expected, actual):
        if max_per_img and len(dets.scores) >= max_per_img:
            cuts.append(float(dets.scores.min()))
    unpaired = np.concatenate([
        np.delete(expected.scores, pairs[:, 0]),
        np.delete(actual.scores, pairs[:, 1])
    ]).astype(np.float64)
    at_cut = np.zeros(len(unpaired), bool)
    for cut in cuts:
        at_cut |= np.abs(unpaired - cut) <= score_tol
    rows, cols = pairs[:, 0], pairs[:, 1]
    return DetectionMatch(
        expected=n,
        actual=m,
        matched=len(pairs),
        boundary=int(at_cut.sum()),
        unmatched=int((~at_cut).sum()),
        box_error=float(box_err[rows, cols].max()) if len(pairs) else 0.,
        score_error=float(score_err[rows, cols].max()) if len(pairs) else 0.,
        pairs=pairs)


def merge_matches(matches: Iterable[DetectionMatch]) -> DetectionMatch:
    """Several images' matches as one: counts summed, worst errors."""
    matches = list(matches)
    return DetectionMatch(
        *(sum(getattr(m, k) for m in matches)
          for k in ('expected', 'actual', 'matched', 'boundary', 'unmatched')),
        box_error=max([m.box_error for m in matches], default=0.),
        score_error=max([m.score_error for m in matches], default=0.))


def split_by_image(batch_index: np.ndarray, batch: int) -> List[np.ndarray]:
    """For each of the ``batch`` images, the indices of its rows in an
    end-to-end graph's outputs (its ``batch_index`` output)."""
    batch_index = np.asarray(batch_index).reshape(-1)
    return [np.flatnonzero(batch_index == b) for b in range(batch)]


def match_batch(expected: Sequence[np.ndarray],
                actual: Sequence[np.ndarray],
                batch: int,
                box_tol: float,
                score_tol: float,
                score_thr: Optional[float] = None,
                max_per_img: Optional[int] = None) -> List[DetectionMatch]:
    """:func:`match_detections` for every image of an end-to-end graph's
    outputs (``batch_index``, ``boxes``, ``scores``, ``labels``, ...).

    Returns:
        list[DetectionMatch]: One per image; its ``pairs`` index the
        graph's rows (the whole batch's), not the image's.
    """
    results = []
    rows_e = split_by_image(expected[0], batch)
    rows_a = split_by_image(actual[0], batch)
    for keep_e, keep_a in zip(rows_e, rows_a):
        found = match_detections(
            Detections(*(np.asarray(o)[keep_e] for o in expected[1:4])),
            Detections(*(np.asarray(o)[keep_a] for o in actual[1:4])), box_tol,
            score_tol, score_thr, max_per_img)
        pairs = np.stack(
            [keep_e[found.pairs[:, 0]], keep_a[found.pairs[:, 1]]], axis=1)
        results.append(found._replace(pairs=pairs))
    return results


def _as_arrays(dets: Detections) -> Detections:
    return Detections(
        np.asarray(dets.boxes).reshape(-1, 4),
        np.asarray(dets.scores).reshape(-1),
        np.asarray(dets.labels).reshape(-1))


def _most_pairs(feasible: np.ndarray, box_err: np.ndarray,
                score_err: np.ndarray, box_tol: float,
                score_tol: float) -> np.ndarray:
    """The largest set of feasible pairs, the closest among those.

    A minimum-cost assignment in which a feasible pair costs its error as a
    fraction of the tolerance (at most 1) and an infeasible one more than
    all feasible pairs together: fewer infeasible pairs always win, so the
    feasible pairs it keeps are as many as any pairing has.

    Returns:
        ndarray: (K, 2) int64 (row, column) of the feasible pairs.
    """
    if not feasible.any():
        return np.zeros((0, 2), np.int64)
    from scipy.optimize import linear_sum_assignment
    closeness = np.maximum(box_err / max(box_tol, 1e-12),
                           score_err / max(score_tol, 1e-12))
    cost = np.where(feasible, np.minimum(closeness, 1.0),
                    float(min(feasible.shape) + 1))
    rows, cols = linear_sum_assignment(cost)
    keep = feasible[rows, cols]
    return np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)


def compare_end2end_outputs(expected: Sequence[np.ndarray],
                            actual: Sequence[np.ndarray],
                            batch: int,
                            tolerance: float,
                            score_thr: Optional[float] = None,
                            max_per_img: Optional[int] = None) -> tuple:
    """An end-to-end graph's outputs against PyTorch's, as sets.

    The tolerances are relative, as for the other outputs of a graph:
    ``tolerance`` times the largest box coordinate for boxes, times the
    largest score for scores (the reference's; the engine's when the
    reference has no detection). The masks of paired detections (a last
    output, if any) must agree within ``tolerance`` of the largest
    reference mask value.

    Args:
        expected (Sequence[ndarray]): PyTorch's ``batch_index``,
            ``boxes``, ``scores``, ``labels`` (and ``masks``).
        actual (Sequence[ndarray]): The engine's.
        batch (int): Images in the batch.
        tolerance (float): Largest accepted relative error.
        score_thr (float, optional): The graph's score threshold.
        max_per_img (int, optional): The graph's ``max_per_img``.

    Returns:
        tuple[float, DetectionMatch]: The largest relative error of the
        pairs (``inf`` when a detection is unpaired away from the
        boundaries), and the match over the batch.
    """
    scales = []
    for k in (1, 2):  # boxes, scores
        ref = np.asarray(expected[k]) if len(expected[k]) else np.asarray(
            actual[k])
        scales.append(max(float(np.abs(ref).max()), 1e-12) if ref.size else 1.)
    per_image = match_batch(expected, actual, batch, tolerance * scales[0],
                            tolerance * scales[1], score_thr, max_per_img)
    found = merge_matches(per_image)
    if not found.ok:
        return float('inf'), found
    error = max(found.box_error / scales[0], found.score_error / scales[1])
    if len(expected) > 4 and found.matched:
        pairs = np.concatenate([m.pairs for m in per_image])
        ref = np.asarray(expected[4])[pairs[:, 0]].astype(np.float64)
        got = np.asarray(actual[4])[pairs[:, 1]].astype(np.float64)
        scale = max(float(np.abs(ref).max()), 1e-12)
        error = max(error, float(np.abs(ref - got).max()) / scale)
    return error, found
