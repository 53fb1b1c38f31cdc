"""The aligned encoder of INSTA (DESIGN.md 2): the sentence encoder fine-tuned on the pool's
own templates, so that instructions of one dataset embed close together.

  positives  two templates of the same dataset, a `positive_fraction` (40%) subsample of
             every such pair, label 1;
  negatives  templates of two different datasets whose cosine under the base encoder is
             below `negative_threshold` (0.3), `negatives_per_positive` per positive, label 0;
  loss       mean squared error between the pair's cosine and its label (optax AdamW);
  selection  `dev_fraction` of the pairs (of each label) is held out; the epoch whose dev
             Pearson(cosine, label) is highest is kept, the base (epoch 0) if none beats it.

The result is a sentence-transformers folder plus xlt_aligned.json, loaded with
`SentenceEncoder.load("aligned:DIR")`.
"""
from __future__ import annotations

import dataclasses
import itertools
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xlt.insta import bert
from xlt.insta.encoder import SentenceEncoder, check_out_dir

Pair = tuple[str, str, float]  # (text a, text b, label)


@dataclasses.dataclass(frozen=True)
class AlignConfig:
  epochs: int = 5
  learning_rate: float = 1e-6
  batch_size: int = 16
  positive_fraction: float = 0.4
  negative_threshold: float = 0.3
  negatives_per_positive: float = 1.0
  dev_fraction: float = 0.1
  weight_decay: float = 0.01  # AdamW's, as sentence-transformers' fit()
  seed: int = 0

  def __post_init__(self):
    checks = [("epochs", self.epochs >= 1), ("learning_rate", self.learning_rate > 0),
              ("batch_size", self.batch_size >= 1),
              ("positive_fraction", 0 < self.positive_fraction <= 1),
              ("negative_threshold", -1 <= self.negative_threshold <= 1),
              ("negatives_per_positive", self.negatives_per_positive >= 0),
              ("dev_fraction", 0 <= self.dev_fraction < 1),
              ("weight_decay", self.weight_decay >= 0)]
    bad = [name for name, ok in checks if not ok]
    if bad:
      values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
      raise ValueError(f"AlignConfig: invalid {values}")


@dataclasses.dataclass(frozen=True)
class AlignResult:
  best_epoch: int
  dev_pearson: list[float]   # [epochs + 1]: index 0 is the base encoder
  train_loss: list[float]    # [epochs]: mean loss per epoch
  step_losses: list[float]
  num_train_pairs: int
  num_dev_pairs: int
  out_dir: pathlib.Path


def make_pairs(texts_by_dataset: dict[str, Sequence[str]], embeddings: dict[str, np.ndarray],
               config: AlignConfig = AlignConfig()) -> tuple[list[Pair], list[Pair]]:
  """(train pairs, dev pairs); `embeddings` maps every text to its base unit vector."""
  datasets = sorted(texts_by_dataset)
  rng = np.random.default_rng(config.seed)
  positives = [(a, b, 1.0) for d in datasets
               for a, b in itertools.combinations(list(dict.fromkeys(texts_by_dataset[d])), 2)]
  if not positives:
    raise ValueError("the pool has no dataset with two templates: no positive pairs to "
                     "align on")
  keep = max(1, round(config.positive_fraction * len(positives)))
  positives = [positives[i] for i in sorted(rng.choice(len(positives), keep, replace=False))]

  texts, owners = [], []
  for i, d in enumerate(datasets):
    for text in dict.fromkeys(texts_by_dataset[d]):
      texts.append(text)
      owners.append(i)
  owners = np.asarray(owners)
  vectors = np.stack([np.asarray(embeddings[t], np.float64) for t in texts])  # [N, H]
  similarity = vectors @ vectors.T
  upper = np.triu(np.ones_like(similarity, bool), k=1)
  allowed = upper & (owners[:, None] != owners[None, :]) & (similarity < config.negative_threshold)
  rows, cols = np.nonzero(allowed)
  wanted = min(len(rows), round(config.negatives_per_positive * len(positives)))
  chosen = sorted(rng.choice(len(rows), wanted, replace=False)) if wanted else []
  negatives = [(texts[rows[i]], texts[cols[i]], 0.0) for i in chosen]

  train, dev = [], []
  for group in (positives, negatives):
    order = rng.permutation(len(group))
    n_dev = round(config.dev_fraction * len(group))
    if config.dev_fraction > 0 and len(group) >= 2:
      n_dev = min(max(n_dev, 1), len(group) - 1)
    dev += [group[i] for i in order[:n_dev]]
    train += [group[i] for i in order[n_dev:]]
  return train, dev


def _pair_loss(params, config: bert.BertConfig, ids_a, mask_a, ids_b, mask_b, labels, weights):
  cosine = jnp.sum(bert.encode(params, config, ids_a, mask_a) *
                   bert.encode(params, config, ids_b, mask_b), axis=-1)  # [B]
  return jnp.sum(weights * (cosine - labels) ** 2) / jnp.maximum(jnp.sum(weights), 1.0)


def _batch(encoder: SentenceEncoder, pairs: Sequence[Pair], size: int):
  """Tokenised pairs padded to `size` rows (weight 0), so every batch has one shape."""
  pad = size - len(pairs)
  a = [p[0] for p in pairs] + [""] * pad
  b = [p[1] for p in pairs] + [""] * pad
  ids_a, mask_a = encoder.tokenize(a)
  ids_b, mask_b = encoder.tokenize(b)
  labels = np.array([p[2] for p in pairs] + [0.0] * pad, np.float32)
  weights = np.array([1.0] * len(pairs) + [0.0] * pad, np.float32)
  return ids_a, mask_a, ids_b, mask_b, labels, weights


def pearson(encoder: SentenceEncoder, pairs: Sequence[Pair]) -> float:
  """Pearson correlation of the pairs' cosines with their labels (nan if undefined)."""
  if len(pairs) < 2 or len({p[2] for p in pairs}) < 2:
    return float("nan")
  texts = list(dict.fromkeys([p[0] for p in pairs] + [p[1] for p in pairs]))
  vectors = dict(zip(texts, encoder.embed(texts)))
  cosines = np.array([float(vectors[a] @ vectors[b]) for a, b, _ in pairs])
  return float(np.corrcoef(cosines, [p[2] for p in pairs])[0, 1])


def align(encoder: SentenceEncoder, texts_by_dataset: dict[str, Sequence[str]],
          out_dir: str | pathlib.Path, config: AlignConfig = AlignConfig(),
          pool_name: str = "", overwrite: bool = False, progress: bool = True) -> AlignResult:
  """Fine-tune `encoder` on the pool's templates; save the best epoch into `out_dir`."""
  out = pathlib.Path(out_dir).expanduser().resolve()
  check_out_dir(out, overwrite)  # before any work: nothing is lost on a bad --out
  texts = list(dict.fromkeys(t for d in sorted(texts_by_dataset) for t in texts_by_dataset[d]))
  base = dict(zip(texts, encoder.embed(texts)))
  train, dev = make_pairs(texts_by_dataset, base, config)
  positives = sum(p[2] == 1.0 for p in train + dev)
  print(f"align: {len(train)} train / {len(dev)} dev pairs ({positives} positive, "
        f"{len(train) + len(dev) - positives} negative) over {len(texts_by_dataset)} datasets")

  tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
  params = encoder.params
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(_pair_loss)(params, encoder.config, *batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  dev_pearson = [pearson(encoder, dev)]
  print(f"epoch 0 (base): dev Pearson {dev_pearson[0]:.4f}")
  best_epoch, best_params = 0, params
  train_loss, step_losses = [], []
  rng = np.random.default_rng(config.seed + 1)
  for epoch in range(1, config.epochs + 1):
    order = rng.permutation(len(train))
    starts = range(0, len(train), config.batch_size)
    if progress:
      from tqdm import tqdm
      starts = tqdm(starts, desc=f"epoch {epoch}", unit="batch", leave=False)
    losses = []
    for start in starts:
      pairs = [train[i] for i in order[start:start + config.batch_size]]
      params, opt_state, loss = step(params, opt_state,
                                     _batch(encoder, pairs, config.batch_size))
      losses.append(float(loss))
    step_losses += losses
    train_loss.append(float(np.mean(losses)))
    dev_pearson.append(pearson(encoder.with_params(params), dev))
    if np.isnan(dev_pearson[-1]):  # no dev pairs (dev_fraction 0): keep the latest epoch
      better = True
    else:
      better = dev_pearson[-1] > max((p for p in dev_pearson[:-1] if not np.isnan(p)),
                                     default=-np.inf)
    if better:
      best_epoch, best_params = epoch, params
    print(f"epoch {epoch}: train loss {train_loss[-1]:.5f}, dev Pearson "
          f"{dev_pearson[-1]:.4f}{'  (best)' if better else ''}")

  metadata = {
      "base_encoder": encoder.name, "base_encoder_id": encoder.encoder_id,
      "base_encoder_path": str(encoder.path), "pool": pool_name,
      "config": dataclasses.asdict(config), "dev_pearson": dev_pearson,
      "train_loss": train_loss, "best_epoch": best_epoch,
      "num_train_pairs": len(train), "num_dev_pairs": len(dev)}
  saved = encoder.with_params(best_params).save(out, metadata, overwrite=overwrite)
  return AlignResult(best_epoch, dev_pearson, train_loss, step_losses, len(train), len(dev),
                     saved)
