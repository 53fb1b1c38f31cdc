"""INSTA's aligned encoder: the pairs it trains on, and a few real steps on a tiny pool."""
import itertools
import json

import numpy as np
import pytest

from xlt.insta.align import AlignConfig, align, make_pairs


def _unit(*values):
  v = np.asarray(values, np.float64)
  return v / np.linalg.norm(v)


def test_pairs_follow_the_papers_rules():
  pool = {"a": ["a1", "a2", "a3", "a4", "a5"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2"]}
  # a* and b* point one way, c* another: a-b cosines are 1 (never negatives), a-c and b-c 0.
  embeddings = {t: _unit(1, 0) for t in pool["a"] + pool["b"]}
  embeddings.update({t: _unit(0, 1) for t in pool["c"]})
  config = AlignConfig(positive_fraction=0.4, negative_threshold=0.3, dev_fraction=0.2)
  train, dev = make_pairs(pool, embeddings, config)
  pairs = train + dev
  within = sum(len(list(itertools.combinations(v, 2))) for v in pool.values())  # 10 + 3 + 1
  positives = [p for p in pairs if p[2] == 1.0]
  negatives = [p for p in pairs if p[2] == 0.0]
  assert len(positives) == round(0.4 * within)
  assert all(a[0] == b[0] for a, b, _ in positives)  # same dataset
  assert len(negatives) == len(positives)
  assert all(a[0] != b[0] and "c" in (a[0], b[0]) for a, b, _ in negatives)  # only cos < 0.3
  assert not set(train) & set(dev)
  assert {p[2] for p in dev} == {0.0, 1.0}  # both labels held out: Pearson is defined
  assert make_pairs(pool, embeddings, config) == (train, dev)  # deterministic
  assert make_pairs(pool, embeddings, AlignConfig(seed=1)) != (train, dev)


def test_pairs_need_a_dataset_with_two_templates():
  with pytest.raises(ValueError, match="no dataset with two templates"):
    make_pairs({"a": ["x"], "b": ["y"]}, {"x": _unit(1, 0), "y": _unit(0, 1)})
  with pytest.raises(ValueError, match="positive_fraction"):
    AlignConfig(positive_fraction=0)


TINY_POOL = {
    "nli": ["Does the premise entail the hypothesis?",
            "Given the premise, is the hypothesis true, false or neither?",
            "Can we infer the hypothesis from the premise?"],
    "sentiment": ["Is this movie review positive or negative?",
                  "How does the reviewer feel about the product?",
                  "Did the customer like the restaurant?"],
    "summarization": ["Summarize the article in one sentence.",
                      "Write a short summary of the news story.",
                      "What is the gist of this document?"],
    "translation": ["Translate the sentence into French.",
                    "How do you say this in German?",
                    "Give the Spanish translation of the text."],
}


def test_alignment_lowers_the_loss_and_saves_a_loadable_encoder(tmp_path, capsys):
  from xlt.insta.encoder import SentenceEncoder
  base = SentenceEncoder.load(None)
  config = AlignConfig(epochs=3, learning_rate=1e-4, batch_size=4, positive_fraction=1.0,
                       negative_threshold=0.5, dev_fraction=0.25)
  result = align(base, TINY_POOL, tmp_path / "aligned", config, pool_name="tiny",
                 progress=False)
  assert result.train_loss[-1] < result.train_loss[0]
  assert len(result.dev_pearson) == config.epochs + 1
  assert result.best_epoch == int(np.nanargmax(result.dev_pearson))
  aligned = SentenceEncoder.load(f"aligned:{result.out_dir}")
  assert aligned.encoder_id != base.encoder_id
  metadata = json.loads((result.out_dir / "xlt_aligned.json").read_text())
  assert metadata["best_epoch"] == result.best_epoch and metadata["pool"] == "tiny"
  assert metadata["dev_pearson"] == result.dev_pearson
  # Same-dataset templates moved closer together than under the base encoder.
  texts = TINY_POOL["nli"]
  before, after = base.embed(texts), aligned.embed(texts)
  if result.best_epoch > 0:
    assert np.mean(after @ after.T) > np.mean(before @ before.T)
  out = capsys.readouterr().out
  assert "epoch 0 (base): dev Pearson" in out and "epoch 3: train loss" in out
  # An existing folder is refused before any training.
  with pytest.raises(FileExistsError, match="not empty"):
    align(base, TINY_POOL, result.out_dir, config, progress=False)
