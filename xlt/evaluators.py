"""What `xlt eval` runs on one task: an evaluator returns that task's metrics.

An evaluator is a class with a `name` and `__call__(task, ctx) -> dict`, listed in
EVALUATORS. `for_task` picks what a task requires: rank classification for the
`_score_eval` twins (every answer choice scored), decoding plus the metrics of the
task's template and cluster for everything else. Teacher-forced loss is available on
request (`evaluate.evaluators = ['teacher_forced']`).
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np
from tqdm import tqdm

from xlt import decoding, metrics, models, partitioning, rank_classification, run_paths, scoring
from xlt.data import DataConfig
from xlt.loaded_model import LoadedModel
from xlt.train_step import make_eval_step

_HANGUL = re.compile("[\uac00-\ud7a3]")


@dataclasses.dataclass
class EvalContext:
  loaded: LoadedModel
  data: DataConfig
  lengths: Mapping[str, int]
  decode: decoding.DecodeConfig = decoding.DecodeConfig()
  length_normalize: bool = False
  predictions_dir: str | None = None     # generation predictions go to <dir>/<task>.jsonl
  compiled: dict = dataclasses.field(default_factory=dict)  # shared by all tasks of a run

  def jitted(self, key, build: Callable[[], Callable]) -> Callable:
    """One jitted function per key for the whole run, so tasks of equal shapes reuse
    its compilation."""
    if key not in self.compiled:
      self.compiled[key] = build()
    return self.compiled[key]

  def progress(self, iterable, task_name: str):
    return tqdm(iterable, desc=task_name, unit="batch", leave=False,
                disable=jax.process_index() != 0)

  def on_devices(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    sharding = partitioning.batch_sharding(self.loaded.mesh)
    return {k: jax.device_put(v, sharding) for k, v in batch.items()}


class TeacherForcedLoss:
  """Mean per-token loss (nats) and token accuracy (points) of the targets given the
  inputs."""

  name = "teacher_forced"

  def __call__(self, task, ctx: EvalContext) -> dict[str, Any]:
    from xlt.data.eval_data import model_feature_batches
    lm = ctx.loaded
    step = ctx.jitted("teacher_forced", lambda: jax.jit(
        make_eval_step(lm.model), out_shardings=partitioning.replicated(lm.mesh)))
    totals = {"loss_sum": 0.0, "correct_tokens": 0.0, "target_tokens": 0.0}
    examples = 0
    decoder_only = models.is_decoder_only(lm.config)
    for batch, real in ctx.progress(
        model_feature_batches(task, ctx.data, ctx.lengths, decoder_only), task.name):
      with partitioning.activation_rules(lm.mesh, lm.rules):
        sums = jax.device_get(step(lm.params, ctx.on_devices(batch)))
      for k in totals:
        totals[k] += float(sums[k])
      examples += real
    tokens = max(totals["target_tokens"], 1.0)
    return {"loss": totals["loss_sum"] / tokens,
            "token_accuracy": 100.0 * totals["correct_tokens"] / tokens,
            "target_tokens": int(totals["target_tokens"]), "examples": examples}


class RankClassification:
  """Scores every (example, choice) row of a `_score_eval` task by the summed target
  log-probability and picks the best choice per example: accuracy, macro-F1."""

  name = "rank_classification"

  def __call__(self, task, ctx: EvalContext) -> dict[str, Any]:
    from xlt.data.eval_data import scored_choice_batches
    lm = ctx.loaded
    scorer = ctx.jitted("score", lambda: scoring.jit_score_batch(lm.model, lm.mesh))
    idx, scores, correct, lengths = [], [], [], []
    for batch, batch_idx, batch_correct in ctx.progress(
        scored_choice_batches(task, ctx.data, ctx.lengths, models.is_decoder_only(lm.config)),
        task.name):
      real = len(batch_idx)
      with partitioning.activation_rules(lm.mesh, lm.rules):
        batch_scores = np.asarray(jax.device_get(scorer(lm.params, ctx.on_devices(batch))))
      idx.append(batch_idx)
      scores.append(batch_scores[:real])
      correct.append(batch_correct)
      lengths.append(batch["decoder_loss_weights"][:real].sum(-1))
    if not idx:
      return {"examples": 0}
    idx_all = np.concatenate(idx)
    out = rank_classification.rank_classification_metrics(
        idx_all, np.concatenate(scores), np.concatenate(correct),
        np.concatenate(lengths) if ctx.length_normalize else None)
    out["choices_per_example"] = rank_classification.choices_per_example(idx_all)
    return out


class Generation:
  """Decodes every example (greedy, beam or sampling: `DecodeConfig`) and computes the
  metrics of the task's template metadata, else of its cluster (xlt.metrics.metrics_for).
  Predictions are written beside the results, one JSON line per example."""

  name = "generation"

  def __call__(self, task, ctx: EvalContext) -> dict[str, Any]:
    rows, predictions = [], []
    for row, prediction in decoded_rows(task, ctx, ctx.lengths["targets"]):
      rows.append(row)
      predictions.append(prediction)
    if not rows:
      return {"examples": 0}
    targets = [r["targets"] for r in rows]
    info = task_info(task.name)
    names = metrics.metrics_for(info["template_metrics"], info["cluster"])
    out = metrics.compute(names, targets, predictions, target_language(targets))
    out["examples"] = len(rows)
    if ctx.predictions_dir and jax.process_index() == 0:
      _write_predictions(run_paths.join(ctx.predictions_dir, f"{task.name}.jsonl"), rows,
                         predictions)
    return out


def decoded_rows(task, ctx: EvalContext, decode_length: int) -> Iterator[tuple[dict, str]]:
  """({inputs, targets} texts, decoded prediction) per example of the task's split, decoded
  as ctx.decode says; `xlt infer` writes these, the Generation evaluator scores them."""
  from xlt.data.eval_data import text_batches
  lm, config = ctx.loaded, ctx.decode
  fn = ctx.jitted(("decode", config, decode_length), lambda: jax.jit(
      lambda p, x, rng: decoding.decode(lm.model, p, x, decode_length, config, rng),
      out_shardings=partitioning.replicated(lm.mesh)))
  vocab = task.output_features["targets"].vocabulary
  rng = jax.random.key(config.seed)
  for i, (batch, texts) in enumerate(ctx.progress(
      text_batches(task, ctx.data, ctx.lengths["inputs"]), task.name)):
    with partitioning.activation_rules(lm.mesh, lm.rules):
      ids = np.asarray(jax.device_get(fn(lm.params, ctx.on_devices(batch)[
          "encoder_input_tokens"], jax.random.fold_in(rng, i))))
    for row, pred in zip(texts, ids):  # padding rows have no text
      yield row, vocab.decode([int(t) for t in decoding.until_eos(pred)])


EVALUATORS: dict[str, Callable[[], Any]] = {
    e.name: e for e in (TeacherForcedLoss, RankClassification, Generation)}


def for_task(task_name: str) -> str:
  """The evaluator a task requires: scoring for rank-classification twins, else decoding."""
  from xlt.data.template_tasks import SCORE_EVAL_SUFFIX, TASKS
  info = TASKS.get(task_name)
  scored = info.score_eval if info is not None else task_name.endswith(SCORE_EVAL_SUFFIX)
  return RankClassification.name if scored else Generation.name


def task_info(task_name: str) -> dict[str, Any]:
  """What the reports group by: dataset, cluster, template and its three language axes.
  Tasks registered outside xlt.data.template_tasks report themselves as one dataset."""
  from xlt.data.template_tasks import TASKS
  info = TASKS.get(task_name)
  if info is None:
    return {"dataset": task_name, "cluster": "other", "template": "", "language": "",
            "template_language": "", "template_style": "", "answer_language": "",
            "template_metrics": ()}
  template = info.template
  return {"dataset": info.dataset, "cluster": info.cluster,
          "template": template.name if template else _prerendered_template(task_name),
          "language": info.language, "template_language": info.template_language,
          "template_style": template.style if template else "korani",
          "answer_language": info.answer_language,
          "template_metrics": tuple(template.metrics) if template else ()}


def _prerendered_template(task_name: str) -> str:
  """KORANI release tasks name their template in the task name (`__tmp<k>`)."""
  match = re.search(r"__(tmp\d+)", task_name)
  return match.group(1) if match else "release"


def target_language(targets: list[str]) -> str:
  """'ko' when the references are Korean text (ROUGE then splits morphemes), else 'en'."""
  return "ko" if any(_HANGUL.search(t) for t in targets) else "en"


def _write_predictions(path: str, rows: list[dict], predictions: list[str]) -> None:
  target = run_paths.resolve(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.parent / (target.name + ".tmp")
  with partial.open("w") as f:
    for row, pred in zip(rows, predictions):
      f.write(json.dumps({**row, "prediction": pred}, ensure_ascii=False) + "\n")
  partial.replace(target)
