"""Resolving task / mixture names, with suggestions when a name is unknown."""
from __future__ import annotations

import difflib
import importlib

import seqio

# Modules that register the project's tasks; imported before any lookup.
TASK_MODULES = ("tasks",)


# Families of tasks that exist only when their data / templates are configured.
_NEEDS = {
    "korani_": "for the datasets found under XLT_KORANI_DIR",
    "p3_": "when promptsource templates are available (XLT_PROMPTSOURCE_DIR)",
    "mono_en": "when promptsource templates are available (XLT_PROMPTSOURCE_DIR)",
}


class UnknownTaskError(ValueError):
  pass


def import_task_modules(extra: tuple[str, ...] = ()) -> None:
  for name in TASK_MODULES + tuple(extra):
    importlib.import_module(name)


def registered_names() -> list[str]:
  return sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))


def get_task_or_mixture(name: str):
  """seqio.get_mixture_or_task with an error that lists the closest registered names."""
  import_task_modules()
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    if name.startswith("insta/"):
      return _insta_mixture(name)
    names = registered_names()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    for prefix, why in _NEEDS.items():
      if name.startswith(prefix):
        hint += f" ({prefix}* tasks are registered {why}.)"
    raise UnknownTaskError(
        f"unknown task or mixture {name!r} (MIXTURE_OR_TASK_NAME).{hint} "
        f"{len(names)} are registered; list them with `xlt tasks`.") from None


def _insta_mixture(name: str):
  """An INSTA mixture not registered yet: from the selection store, or selected now."""
  from xlt.insta import selection
  try:
    selection.resolve_mixture(name)
  except (selection.SelectionError, FileNotFoundError) as e:
    raise UnknownTaskError(f"INSTA mixture {name!r} (MIXTURE_OR_TASK_NAME): {e}") from None
  return seqio.get_mixture_or_task(name)


def use_vocabulary(path: str | None, task_or_mixture=None,
                   model_vocab_size: int | None = None) -> None:
  """Select the tasks' vocabulary (DataConfig.vocabulary) and check the model can embed it."""
  from xlt.data import vocabulary
  vocabulary.set_vocabulary(path)
  if model_vocab_size is None or task_or_mixture is None:
    return
  vocab = task_or_mixture.output_features["targets"].vocabulary
  if isinstance(vocab, vocabulary.ConfiguredVocabulary):
    size = vocab.vocab_size
    if size > model_vocab_size:
      raise ValueError(
          f"the vocabulary {vocabulary.vocabulary_path()!r} has {size} ids but the model's "
          f"vocab_size is {model_vocab_size}; set T5Config.vocab_size >= {size} or choose "
          "another VOCABULARY")
