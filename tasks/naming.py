"""Task and mixture names: `<prefix>_<dataset>__<template>`, readable and unambiguous."""
from __future__ import annotations

from xlt.data.catalogue import slug  # noqa: F401  re-exported for the task modules

# T0: a dataset's rate is its example count capped at 500k, shared by its templates.
MAX_EXAMPLES_PER_DATASET = 500_000


def task_name(prefix: str, dataset: str, template: str) -> str:
  return f"{prefix}_{slug(dataset)}__{template}"


def t0_rate(train_examples: int | None, num_templates: int) -> float:
  """min(examples, 500k) / templates (T0); equal weight per dataset when the size is unknown."""
  examples = MAX_EXAMPLES_PER_DATASET if train_examples is None else train_examples
  return min(examples, MAX_EXAMPLES_PER_DATASET) / max(num_templates, 1)
