"""SeqIO tasks from (source, template): one task per pair, plus a rank-classification twin.

`register(name, source, template)` adds the task `name` (features inputs/targets, the
rendered text kept as *_pretokenized) and, when the template has answer choices,
`name + "_score_eval"`: every example expands into one scored example per choice
(T5/T0 rank classification) with `idx` = [example, choice] and `is_correct`. Rows are
rendered lazily in the dataset function, so registering reads nothing from disk.
What each task is (dataset, cluster, template axes) is kept in TASKS for `xlt tasks`.
A split that yields no row (empty or header-only file, every row skipped) raises
EmptyTaskError naming the task, the split and, where one is at fault, the file.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Callable, Iterator

import seqio
import tensorflow as tf

from xlt.data import vocabulary
from xlt.data.sources.base import DataFileError, RowStats, Source, drop
from xlt.data.templates import Template, TemplateError

SCORE_EVAL_SUFFIX = "_score_eval"
Adapter = Callable[[dict], "dict | None"]  # row of one schema -> row of another (None: skip)


class EmptyTaskError(ValueError):
  """A split gives no row: no data rows in its files, a wrong template, or data in the
  wrong format."""


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  name: str
  dataset: str                 # dataset whose rows the task reads
  cluster: str
  language: str                # language of the data
  template: Template | None    # None: pre-rendered rows (KORANI release)
  purpose: str                 # "train" | "eval"
  score_eval: bool = False     # the rank-classification twin

  @property
  def template_language(self) -> str:
    return self.template.language if self.template else self.language

  @property
  def answer_language(self) -> str:
    return self.template.choice_language if self.template else self.language


TASKS: dict[str, TaskInfo] = {}
STATS: dict[tuple[str, str], RowStats] = {}  # (task, split) -> counts of the latest pass
RENDERERS: dict[str, Callable[[str], Iterator[dict]]] = {}  # task -> split -> rendered rows
SOURCES: dict[str, Source] = {}  # task -> the source it reads (`xlt tasks` counts its rows)


def source_rows(name: str, source: Source, split: str, stats: RowStats) -> Iterator[dict]:
  """`source.rows`, with a data file's error naming the task and split as well."""
  try:
    yield from source.rows(split, stats)
  except DataFileError as e:
    raise EmptyTaskError(f"task {name!r}, split {split!r}: {e}") from e


def check_not_empty(name: str, split: str, stats: RowStats) -> None:
  if not stats.read:
    raise EmptyTaskError(f"task {name!r}, split {split!r}: the data has no rows")
  if not stats.kept:
    raise EmptyTaskError(f"task {name!r}, split {split!r}: all {stats.read} rows were "
                         f"skipped ({stats.summary()}); check the template and the data")


def rendered_rows(name: str, source: Source, template: Template, split: str,
                  adapter: Adapter | None = None) -> Iterator[dict]:
  """{inputs, targets, answer_choices} for every row that renders; the rest counted."""
  source.check_split(split)
  stats = STATS[(name, split)] = RowStats(f"{name}/{split}")
  for row in source_rows(name, source, split, stats):
    if adapter is not None:
      row = adapter(row)
      if row is None:
        drop(stats, f"no {template.dataset} equivalent")
        continue
    try:
      out = template.render(row)
    except TemplateError as e:
      drop(stats, f"template: {str(e).split(': ', 1)[-1]}")
      continue
    if not out.inputs or not out.targets:
      drop(stats, "template rendered nothing for this row")
      continue
    yield {"inputs": out.inputs, "targets": out.targets,
           "answer_choices": list(out.answer_choices or ())}
  stats.log()
  check_not_empty(name, split, stats)


def rank_classification_rows(rows: Iterator[dict],
                             on_skip: Callable[[str], None] = lambda reason: None
                             ) -> Iterator[dict]:
  """One example per answer choice: the choice as target, its position, whether correct.

  A row whose target is none of its choices (a few promptsource templates write e.g.
  "positive review.") trains fine but cannot be scored: it is skipped here.
  """
  i = 0
  for row in rows:
    if row["targets"] not in row["answer_choices"]:
      on_skip("target is not one of the answer choices")
      continue
    for j, choice in enumerate(row["answer_choices"]):
      yield {"inputs": row["inputs"], "targets": choice, "idx": [i, j],
             "is_correct": choice == row["targets"]}
    i += 1


_TEXT = tf.TensorSpec([], tf.string)
_SIGNATURES = {
    False: {"inputs": _TEXT, "targets": _TEXT},
    True: {"inputs": _TEXT, "targets": _TEXT, "idx": tf.TensorSpec([2], tf.int32),
           "is_correct": tf.TensorSpec([], tf.bool)},
}


def _dataset_fn(make_rows: Callable[[str], Iterator[dict]], score_eval: bool):
  signature = _SIGNATURES[score_eval]

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # rows come in file order; seqio shuffles examples
    # The first row is read here, in Python, so a missing file or an all-skipped split
    # raises its own clear error instead of a TensorFlow one from inside the pipeline.
    rows = make_rows(split)
    head = list(itertools.islice(rows, 1))
    started = [itertools.chain(head, rows)]

    def generate():
      for row in (started.pop() if started else make_rows(split)):
        yield {k: row[k] for k in signature}
    return tf.data.Dataset.from_generator(generate, output_signature=signature)
  return dataset_fn


def _add(name: str, dataset_fn, splits, info: TaskInfo) -> str:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
      output_features=vocabulary.OUTPUT_FEATURES)
  TASKS[name] = info
  return name


def register(name: str, source: Source, template: Template, *, cluster: str,
             language: str, purpose: str, adapter: Adapter | None = None,
             splits: tuple[str, ...] | None = None) -> list[str]:
  """Register `name` (and `name_score_eval` for answer-choice templates); returns the names."""
  splits = tuple(splits or source.splits)
  info = TaskInfo(name, source.dataset, cluster, language, template, purpose)
  make_rows = lambda split: rendered_rows(name, source, template, split, adapter)  # noqa: E731
  names = [_add(name, _dataset_fn(make_rows, False), splits, info)]
  RENDERERS[name] = make_rows
  SOURCES[name] = source
  if template.answer_choices is not None:
    def score_rows(split: str) -> Iterator[dict]:
      return rank_classification_rows(
          make_rows(split), lambda reason: drop(STATS[(name, split)], reason))
    names.append(_add(name + SCORE_EVAL_SUFFIX, _dataset_fn(score_rows, True), splits,
                      dataclasses.replace(info, name=name + SCORE_EVAL_SUFFIX,
                                          purpose="eval", score_eval=True)))
  return names


def register_prerendered(name: str, source: Source, *, cluster: str, language: str,
                         purpose: str, splits: tuple[str, ...] | None = None) -> list[str]:
  """A task over rows that already hold inputs/targets/answer_choices (KORANI release)."""
  splits = tuple(splits or source.splits)
  info = TaskInfo(name, source.dataset, cluster, language, None, purpose)

  def make_rows(split: str) -> Iterator[dict]:
    source.check_split(split)
    stats = STATS[(name, split)] = RowStats(f"{name}/{split}")
    yield from source_rows(name, source, split, stats)
    stats.log()
    check_not_empty(name, split, stats)

  names = [_add(name, _dataset_fn(make_rows, False), splits, info)]
  RENDERERS[name] = make_rows
  SOURCES[name] = source
  names.append(_add(name + SCORE_EVAL_SUFFIX,
                    _dataset_fn(lambda s: rank_classification_rows(
                        r for r in make_rows(s) if r["answer_choices"]), True), splits,
                    dataclasses.replace(info, name=name + SCORE_EVAL_SUFFIX, purpose="eval",
                                        score_eval=True)))
  return names


def add_mixture(name: str, tasks: list[str] | list[tuple[str, float]],
                default_rate: float | None = 1.0) -> str | None:
  """seqio.MixtureRegistry.add, replacing a previous definition; none if no tasks."""
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  if not tasks:
    logging.getLogger("xlt.data").debug("mixture %s has no tasks; not registered", name)
    return None
  seqio.MixtureRegistry.add(name, tasks, default_rate=default_rate)
  return name
