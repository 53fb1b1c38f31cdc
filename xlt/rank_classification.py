"""Rank classification (T5/T0): per original example, the choice with the highest score.

Input is the score table of a `_score_eval` task: one row per (example, choice) with
`idx = [example, choice]`, the choice's score and whether it is the correct one.
Accuracy and macro-F1 are over the original examples; the classes of macro-F1 are the
choice positions (the label order of the template's answer choices).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from xlt import metrics


class ScoreTableError(ValueError):
  """A score table that cannot be ranked (an example with no or several correct choices)."""


def predictions(idx: np.ndarray, scores: np.ndarray, is_correct: np.ndarray,
                choice_lengths: np.ndarray | None = None
                ) -> tuple[list[int], list[int]]:
  """(gold choice, predicted choice) per example, in example order.

  idx [n, 2], scores [n], is_correct [n]. With `choice_lengths` [n] the score is divided
  by the choice's target length first (length normalisation; off by default as in T0).
  Ties go to the lowest choice position, so the result does not depend on row order.
  """
  idx = np.asarray(idx).reshape(-1, 2)
  scores = np.asarray(scores, np.float64)
  if choice_lengths is not None:
    scores = scores / np.maximum(np.asarray(choice_lengths, np.float64), 1.0)
  best: dict[int, tuple[float, int]] = {}
  gold: dict[int, list[int]] = {}
  for (example, choice), score, correct in zip(idx.tolist(), scores, np.asarray(is_correct)):
    current = best.get(example)
    if current is None or score > current[0] or (score == current[0] and choice < current[1]):
      best[example] = (float(score), choice)
    if correct:
      gold.setdefault(example, []).append(choice)
  order = sorted(best)
  bad = [e for e in order if len(gold.get(e, [])) != 1]
  if bad:
    raise ScoreTableError(f"examples {bad[:5]} have {len(gold.get(bad[0], []))} correct "
                          "choices (expected exactly one)")
  return [gold[e][0] for e in order], [best[e][1] for e in order]


def rank_classification_metrics(idx, scores, is_correct, choice_lengths=None
                                ) -> dict[str, float]:
  """{"accuracy", "macro_f1"} in points, and the number of original examples."""
  gold, predicted = predictions(idx, scores, is_correct, choice_lengths)
  if not gold:
    return {"examples": 0}
  return {**metrics.compute(("accuracy", "macro_f1"), gold, predicted, "en"),
          "examples": len(gold)}


def choices_per_example(idx: Sequence[Sequence[int]]) -> float:
  """Mean number of scored choices per example (reported beside the accuracy)."""
  idx = np.asarray(idx).reshape(-1, 2)
  return float(len(idx) / max(len(np.unique(idx[:, 0])), 1))
