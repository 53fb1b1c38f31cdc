"""Resolving task / mixture names, with suggestions when a name is unknown."""
from __future__ import annotations

import difflib
import importlib

import seqio

# Modules that register the project's tasks; imported before any lookup.
TASK_MODULES = ("tasks",)


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
    names = registered_names()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownTaskError(
        f"unknown task or mixture {name!r} (MIXTURE_OR_TASK_NAME).{hint} "
        f"{len(names)} are registered; list them with `xlt tasks`.") from None
