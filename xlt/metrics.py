"""Text metrics of evaluation, in points (0-100, like t5.evaluation.metrics).

Pure Python/numpy (rouge-score and sacrebleu are imported when used). Every metric takes
parallel lists of targets and predictions and a language ("ko" for Korean targets; any
other value gets the English conventions). Empty inputs raise ValueError: a mean over no
examples is not a score, and a silent {} would hide a task that lost its data.
`METRICS` is the registry the evaluators run by name; `metrics_for` says which names a
decoded task reports.
"""
from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Any, Callable, Hashable, Sequence

import numpy as np

# Template metadata metric names (promptsource's "Accuracy", "BLEU", "ROUGE", "Squad", ...
# and our YAML's lowercase ones), looked up lowercased with spaces and hyphens as "_".
# Names not here ("Other", "Edit Distance", "Pearson Correlation", "AUC") are ignored.
TEMPLATE_METRICS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "macro_f1": ("macro_f1",),
    "exact_match": ("exact_match",),
    "squad": ("squad",),
    "rouge": ("rouge_l",),
    "rouge_l": ("rouge_l",),
    "rougel": ("rouge_l",),
    "bleu": ("bleu",),
    "chrf": ("chrf",),
}
# What a cluster reports when its template names nothing we compute; other clusters get
# exact_match only.
CLUSTER_METRICS: dict[str, tuple[str, ...]] = {
    "summarization": ("rouge_l",),
    "dialog": ("rouge_l",),
    "paraphrasing": ("rouge_l",),
    "structure_to_text": ("rouge_l",),
    "coreference": ("rouge_l",),
    "translation": ("bleu", "chrf"),
    "extractive_qa": ("squad",),
    "closed_book_qa": ("squad",),
}
ALWAYS = "exact_match"  # reported by every decoded task, whatever else it reports

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# KorQuAD 1.0's evaluate script replaces these by spaces before dropping ASCII punctuation.
_KORQUAD_MARKS = re.compile("['\"《》<>〈〉()‘’]")


def _check(targets: Sequence[Any], predictions: Sequence[Any]) -> None:
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  if not len(targets):
    raise ValueError("no examples to score (targets and predictions are empty)")


def _answers(target: str | Sequence[str]) -> list[str]:
  """A target is one answer or a non-empty list of acceptable ones."""
  answers = [target] if isinstance(target, str) else list(target)
  if not answers:
    raise ValueError("a target has an empty list of acceptable answers")
  return answers


def _single(targets: Sequence[Any], metric: str) -> list[str]:
  bad = [t for t in targets if not isinstance(t, str)]
  if bad:
    raise ValueError(f"{metric} takes one reference string per example, got {bad[0]!r}")
  return list(targets)


def accuracy(targets: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
  """Share of predictions equal to their target (no normalisation)."""
  _check(targets, predictions)
  return 100.0 * float(np.mean([t == p for t, p in zip(targets, predictions)]))


def macro_f1(targets: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
  """Unweighted mean of per-label F1 over every label seen in targets or predictions,
  as sklearn's f1_score(average="macro"): a label only ever predicted counts, with F1 0."""
  _check(targets, predictions)
  tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
  for t, p in zip(targets, predictions):
    if t == p:
      tp[t] += 1
    else:
      fp[p] += 1
      fn[t] += 1
  labels = dict.fromkeys([*targets, *predictions])
  return 100.0 * float(np.mean([2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]) for k in labels]))


def exact_match(targets: Sequence[str | Sequence[str]], predictions: Sequence[str]) -> float:
  """Share of predictions equal to (one of) their target(s) after strip()."""
  _check(targets, predictions)
  return 100.0 * float(np.mean([any(p.strip() == a.strip() for a in _answers(t))
                                for t, p in zip(targets, predictions)]))


def _normalize_en(text: str) -> str:
  """SQuAD v1.1: lowercase, drop punctuation and articles, squeeze whitespace."""
  text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def _normalize_ko(text: str) -> str:
  """KorQuAD 1.0: quotes/brackets to spaces, lowercase, drop ASCII punctuation, squeeze
  whitespace (no articles to drop)."""
  text = _KORQUAD_MARKS.sub(" ", text).lower()
  return " ".join("".join(c for c in text if c not in _PUNCTUATION).split())


def _f1(prediction: list[str], gold: list[str]) -> float:
  same = sum((collections.Counter(prediction) & collections.Counter(gold)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(prediction), same / len(gold)
  return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence[str | Sequence[str]], predictions: Sequence[str],
          language: str = "en") -> dict[str, float]:
  """{"squad_em", "squad_f1"}, each the max over a target's acceptable answers.

  English: the SQuAD v1.1 script (normalise, then F1 over whitespace tokens). Korean:
  the KorQuAD 1.0 script (its normalisation, then F1 over the characters of the
  normalised answer, spaces excluded), since a Korean answer's words carry particles
  (서울은 / 서울) that would make token F1 all-or-nothing.
  """
  _check(targets, predictions)
  normalize = _normalize_ko if language == "ko" else _normalize_en
  units = (lambda s: list(s.replace(" ", ""))) if language == "ko" else str.split
  em, f1 = [], []
  for target, prediction in zip(targets, predictions):
    pred = normalize(prediction)
    golds = [normalize(a) for a in _answers(target)]
    em.append(max(float(pred == g) for g in golds))
    f1.append(max(_f1(units(pred), units(g)) for g in golds))
  return {"squad_em": 100.0 * float(np.mean(em)), "squad_f1": 100.0 * float(np.mean(f1))}


class _KoreanRougeTokenizer:
  """rouge-score's tokenizer interface over Korean morphemes, lowercased, punctuation and
  symbol tokens dropped as rouge-score's default tokenizer drops them in English."""

  def tokenize(self, text: str) -> list[str]:
    from xlt.korean_morphemes import morphemes
    return [m.lower() for m in morphemes(text)
            if not all(unicodedata.category(c)[0] in "PS" for c in m)]


def rouge_l(targets: Sequence[str], predictions: Sequence[str], language: str = "en"
            ) -> float:
  """Mean over examples of the ROUGE-L F-measure (rouge-score, no stemming).

  rouge-score's default tokenizer keeps only [a-z0-9], so Korean (language="ko") is split
  into morphemes first (xlt.korean_morphemes), as the paper does with Mecab.
  """
  _check(targets, predictions)
  from rouge_score import rouge_scorer
  scorer = rouge_scorer.RougeScorer(
      ["rougeL"], use_stemmer=False,
      tokenizer=_KoreanRougeTokenizer() if language == "ko" else None)
  return 100.0 * float(np.mean([
      scorer.score(t, p)["rougeL"].fmeasure
      for t, p in zip(_single(targets, "rouge_l"), predictions)]))


def bleu(targets: Sequence[str], predictions: Sequence[str], language: str = "en") -> float:
  """Corpus BLEU (sacrebleu defaults: 4-grams, exp smoothing), one reference per example.

  English uses sacrebleu's 13a tokenizer. Korean: both sides are split into morphemes
  (xlt.korean_morphemes, joined by spaces) and sacrebleu tokenizes nothing more
  (tokenize="none"); its own ko-mecab tokenizer needs the mecab-ko system library.
  """
  _check(targets, predictions)
  import sacrebleu
  targets, tokenize = _single(targets, "bleu"), "13a"
  if language == "ko":
    from xlt.korean_morphemes import morphemes
    targets = [" ".join(morphemes(t)) for t in targets]
    predictions = [" ".join(morphemes(p)) for p in predictions]
    tokenize = "none"
  return float(sacrebleu.corpus_bleu(list(predictions), [targets], tokenize=tokenize).score)


def chrf(targets: Sequence[str], predictions: Sequence[str], language: str = "en") -> float:
  """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2, whitespace ignored), one
  reference per example. Characters need no tokenizer, so Korean is scored as written."""
  del language  # the same for every language
  _check(targets, predictions)
  import sacrebleu
  return float(sacrebleu.corpus_chrf(list(predictions), [_single(targets, "chrf")]).score)


MetricFn = Callable[[Sequence[Any], Sequence[Any], str], dict[str, float]]

METRICS: dict[str, MetricFn] = {
    "accuracy": lambda t, p, language: {"accuracy": accuracy(t, p)},
    "macro_f1": lambda t, p, language: {"macro_f1": macro_f1(t, p)},
    "exact_match": lambda t, p, language: {"exact_match": exact_match(t, p)},
    "squad": squad,
    "rouge_l": lambda t, p, language: {"rouge_l": rouge_l(t, p, language)},
    "bleu": lambda t, p, language: {"bleu": bleu(t, p, language)},
    "chrf": lambda t, p, language: {"chrf": chrf(t, p, language)},
}


def metrics_for(template_metrics: Sequence[str], cluster: str) -> list[str]:
  """METRICS names a decoded task reports: its template's metrics we compute, else its
  cluster's (CLUSTER_METRICS), and always exact_match."""
  names: list[str] = []
  for metric in template_metrics:
    key = re.sub(r"[\s-]+", "_", metric.strip().lower())
    names += [n for n in TEMPLATE_METRICS.get(key, ()) if n not in names]
  if not names:
    names = list(CLUSTER_METRICS.get(cluster, ()))
  return names if ALWAYS in names else [*names, ALWAYS]


def compute(names: Sequence[str], targets: Sequence[Any], predictions: Sequence[Any],
            language: str = "en") -> dict[str, float]:
  """The named METRICS on one set of predictions, merged into one dict."""
  unknown = [n for n in names if n not in METRICS]
  if unknown:
    raise ValueError(f"unknown metric(s) {unknown}; available: {sorted(METRICS)}")
  _check(targets, predictions)
  out: dict[str, float] = {}
  for name in names:
    out.update(METRICS[name](list(targets), list(predictions), language))
  return out
