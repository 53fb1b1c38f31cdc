"""INSTA mixtures (xlt/insta): what a selection is evaluated on, and the saved selections.

  insta/<dataset>/eval           every eval task of a dataset with its own templates (its
                                 language, P3 style in English, KORANI style in Korean):
                                 rank-classification twins where it has answer choices,
                                 else its generation tasks; what an INSTA experiment evaluates
  insta/<target>/<pool>/top<k>   each selection in the store ($XLT_INSTA_DIR) whose tasks
                                 are registered here; a missing one is selected when first
                                 requested (xlt.data.registry)
"""
from __future__ import annotations

import collections

from xlt.data import template_tasks
from xlt.insta import selection


def _native_eval_tasks() -> dict[str, list[str]]:
  """dataset slug -> its eval tasks with its own templates: the rank-classification twins
  where it has them, else the plain tasks; each template once (the cross-lingual
  experiment registers some templates again under xl_* names)."""
  score, plain = collections.defaultdict(dict), collections.defaultdict(dict)
  for name in sorted(template_tasks.TASKS):
    info = template_tasks.TASKS[name]
    template = info.template
    if template is not None and (template.language != info.language
                                 or template.choice_language != info.language
                                 or template.style != selection.native_style(info.language)):
      continue
    key = name if template is None else (template.dataset, template.name)
    (score if info.score_eval else plain)[selection.slug(info.dataset)].setdefault(key, name)
  return {dataset: sorted((score.get(dataset) or plain[dataset]).values())
          for dataset in set(score) | set(plain)}


def register() -> None:
  for dataset, names in sorted(_native_eval_tasks().items()):
    template_tasks.add_mixture(f"{selection.PREFIX}{dataset}/eval", names)
  selection.register_stored()


register()
