"""Korean LLM benchmarks scored by rank classification: KMMLU and KoBEST.

Tasks (each with a `_score_eval` twin, the one the mixtures hold and `xlt eval` scores):
  kmmlu_<subject>          one KMMLU subject, 5-shot: the subject's 5 dev rows, in file
                           order, as exemplars; choices are the letters A-D
  kmmlu_<subject>__0shot   the same questions without exemplars
  kobest_<subset>          KoBEST boolq / copa / hellaswag / sentineg / wic, zero-shot,
                           lm-evaluation-harness-style prompt
  (<subject> is the subject's slug: kmmlu_agricultural_sciences, kmmlu_korean_history ...)
Mixtures:
  kmmlu                    the 45 subjects, 5-shot: the macro average over tasks is
                           KMMLU's score, the micro average weighs by questions
  kmmlu_stem, kmmlu_applied_science, kmmlu_humss, kmmlu_other   the supercategories
  kmmlu_0shot              the 45 subjects, 0-shot
  kobest                   the 5 KoBEST subsets

Splits: KMMLU has `test` (evaluation) and `train`; its `dev` is the exemplar pool, not a
split. KoBEST has train / validation / test and is evaluated on `test`. So both are run
with EVAL_SPLIT='test' (docs/korean_benchmarks.md). Every task's cluster is its
supercategory (kmmlu_stem, ...) or its KoBEST dataset's catalogue cluster, so the
per-cluster table of an evaluation gives the supercategory averages.

The prompts live in tasks/templates/benchmarks/, outside the folders the template store
scans for training and cross-lingual templates, so they never join ko_train or the grid.
"""
from __future__ import annotations

import functools

from tasks import template_store
from xlt.data import catalogue, template_tasks
from xlt.data.sources import kmmlu
from xlt.data.sources.korean import KOREAN_SOURCES
from xlt.data.templates import Template, load_template_dir

BENCHMARK_TEMPLATES_DIR = template_store.TEMPLATES_DIR / "benchmarks"
KOBEST_SUBSETS = ("boolq", "copa", "hellaswag", "sentineg", "wic")


@functools.lru_cache(maxsize=None)
def benchmark_templates() -> tuple[Template, ...]:
  return tuple(load_template_dir(BENCHMARK_TEMPLATES_DIR))


def benchmark_template(dataset: str) -> Template:
  """The one benchmark prompt written for `dataset` (kmmlu, kobest_<subset>)."""
  found = [t for t in benchmark_templates() if t.dataset == dataset]
  if len(found) != 1:
    raise ValueError(f"{BENCHMARK_TEMPLATES_DIR}: expected one template for {dataset!r}, "
                     f"found {len(found)}")
  return found[0]


def kmmlu_task_name(subject: str, k_shot: int = kmmlu.DEV_ROWS) -> str:
  """kmmlu_<subject> for the paper's 5-shot setting, kmmlu_<subject>__<k>shot otherwise."""
  suffix = "" if k_shot == kmmlu.DEV_ROWS else f"__{k_shot}shot"
  return f"kmmlu_{kmmlu.subject_slug(subject)}{suffix}"


def register_kmmlu(k_shot: int = kmmlu.DEV_ROWS) -> list[str]:
  """One task per subject with k exemplars; returns the `_score_eval` names."""
  template = benchmark_template("kmmlu")
  scored = []
  for subject, supercategory in kmmlu.SUBJECTS.items():
    names = template_tasks.register(
        kmmlu_task_name(subject, k_shot), kmmlu.KmmluSource(subject, k_shot), template,
        cluster=f"kmmlu_{supercategory}", language="ko", purpose="eval")
    scored.append(names[-1])
  return scored


def register_kobest() -> list[str]:
  scored = []
  for subset in KOBEST_SUBSETS:
    key = f"kobest_{subset}"
    names = template_tasks.register(
        key, KOREAN_SOURCES[key], benchmark_template(key), cluster=catalogue.get(key).cluster,
        language="ko", purpose="eval")
    scored.append(names[-1])
  return scored


def register() -> None:
  five_shot = register_kmmlu(kmmlu.DEV_ROWS)
  template_tasks.add_mixture("kmmlu", five_shot)
  for supercategory in kmmlu.SUPERCATEGORIES:
    template_tasks.add_mixture(f"kmmlu_{supercategory}", [
        name for name, group in zip(five_shot, kmmlu.SUBJECTS.values())
        if group == supercategory])
  template_tasks.add_mixture("kmmlu_0shot", register_kmmlu(0))
  template_tasks.add_mixture("kobest", register_kobest())


register()
