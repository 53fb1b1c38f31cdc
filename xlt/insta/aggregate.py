"""Per-dataset scores from a target-by-candidate similarity table (DESIGN.md 2).

`similarity[t, c]` is the cosine between target instruction t and candidate instruction c;
`owners[c]` the index of the dataset that candidate c belongs to. A dataset's score is

  mean  the mean of its similarities to every target instruction;
  max   its single most similar (target, candidate) pair;
  vote  each target instruction votes for its `top` (10) most similar candidates,
        weighted by rank: rank r (0 = most similar) gets a weight proportional to
        top - r, normalised so one instruction's votes sum to 1; a dataset's score is
        its share of the votes, averaged over the target's instructions (the scores of
        all datasets sum to 1).

Ranking is by score, then by mean similarity (it separates datasets without votes), then
by name, so the order is deterministic.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

AGGREGATES = ("vote", "mean", "max")
VOTE_TOP = 10


def dataset_scores(similarity: np.ndarray, owners: Sequence[int], num_datasets: int,
                   aggregate: str = "vote", top: int = VOTE_TOP) -> np.ndarray:
  """[D] float64 scores from similarity [T, C] and owners [C] in [0, D)."""
  similarity = np.asarray(similarity, np.float64)
  owners = np.asarray(owners, np.int64)
  if similarity.ndim != 2 or similarity.shape[1] != owners.shape[0]:
    raise ValueError(f"similarity {similarity.shape} and owners {owners.shape} disagree")
  if similarity.shape[0] == 0:
    raise ValueError("the target has no instructions to compare")
  if owners.size and (owners.min() < 0 or owners.max() >= num_datasets):
    raise ValueError(f"owners must lie in [0, {num_datasets})")
  if aggregate == "mean":
    return _per_dataset_mean(similarity, owners, num_datasets)
  if aggregate == "max":
    scores = np.full(num_datasets, -np.inf)
    np.maximum.at(scores, owners, similarity.max(axis=0))
    return scores
  if aggregate == "vote":
    return _votes(similarity, owners, num_datasets, top)
  raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def _per_dataset_mean(similarity: np.ndarray, owners: np.ndarray, num_datasets: int
                      ) -> np.ndarray:
  sums = np.zeros(num_datasets)
  np.add.at(sums, owners, similarity.sum(axis=0))
  counts = np.bincount(owners, minlength=num_datasets) * similarity.shape[0]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def _votes(similarity: np.ndarray, owners: np.ndarray, num_datasets: int, top: int
           ) -> np.ndarray:
  if top < 1:
    raise ValueError(f"the vote needs top >= 1, got {top}")
  scores = np.zeros(num_datasets)
  n = min(top, similarity.shape[1])
  for row in similarity:
    best = np.argsort(-row, kind="stable")[:n]  # ties: the earlier candidate first
    weights = (top - np.arange(n)).astype(np.float64)
    np.add.at(scores, owners[best], weights / weights.sum())
  return scores / similarity.shape[0]


def ranking(scores: np.ndarray, mean_similarity: np.ndarray, names: Sequence[str]
            ) -> list[int]:
  """Dataset indices, best first: by score, then mean similarity, then name."""
  order = sorted(range(len(names)), key=lambda i: (-scores[i], -mean_similarity[i], names[i]))
  return order
