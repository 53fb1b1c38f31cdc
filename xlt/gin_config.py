"""Gin at the entry point: which objects are configurable, and parsing with clear errors.

Library code never imports gin; this module registers the plain functions and config
dataclasses under short names (`train`, `T5Config`, `DataConfig`, ...) for gin files.
"""
from __future__ import annotations

import os
from typing import Sequence

import gin

from xlt import checkpoints, divergence, losses, optimizers, partitioning
from xlt.data.config import DataConfig
from xlt.models.config import T5Config
from xlt.models.llama import LlamaConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_registered = False


class GinConfigError(ValueError):
  pass


def register() -> None:
  """Registers every configurable once (gin refuses duplicates)."""
  global _registered
  if _registered:
    return
  from xlt import decoding, evaluation, inference, trainer
  for obj in (T5Config, LlamaConfig, DataConfig, losses.LossConfig, optimizers.OptimizerConfig,
              optimizers.Schedule, partitioning.MeshConfig, checkpoints.CheckpointConfig,
              divergence.DivergenceConfig,
              decoding.DecodeConfig):
    gin.external_configurable(obj, obj.__name__)
  gin.external_configurable(trainer.train, "train")
  gin.external_configurable(evaluation.evaluate, "evaluate")
  gin.external_configurable(inference.infer, "infer")
  _registered = True


def _resolve_file(path: str) -> str:
  for candidate in (path, os.path.join(REPO_ROOT, path)):
    if os.path.isfile(candidate):
      return candidate
  raise GinConfigError(f"gin file {path!r} not found (looked in {os.getcwd()} and {REPO_ROOT})")


def required_macros_unset() -> list[str]:
  """Names of macros still bound to %gin.REQUIRED after all files and overrides."""
  missing = []
  for (scope, selector), values in gin.config._CONFIG.items():  # noqa: SLF001 - no public API
    if selector.endswith("gin.macro") and "value" in values:
      if repr(values["value"]) == "%gin.REQUIRED":
        missing.append(scope)
  return sorted(missing)


def parse(gin_files: Sequence[str], bindings: Sequence[str]) -> None:
  """Parses files in order, then `KEY=VALUE` overrides (later wins), like T5X."""
  register()
  gin.clear_config()
  gin.add_config_file_search_path(REPO_ROOT)
  if not gin_files:
    raise GinConfigError("no --gin_file given; e.g. --gin_file=gin/experiments/demo.gin")
  files = [_resolve_file(f) for f in gin_files]
  from xlt import config_checks
  try:
    gin.parse_config_files_and_bindings(files, None, finalize_config=False)
    known = config_checks.defined_macros() | set(config_checks.macro_uses())
    gin.parse_config(list(bindings))
  except (ValueError, IOError, SyntaxError) as e:
    raise GinConfigError(f"invalid gin configuration: {e}") from None
  known |= set(config_checks.macro_uses())  # a new macro that another override uses
  config_checks.check_macro_overrides([b.split("=", 1)[0].strip() for b in bindings], known)
  missing = required_macros_unset()
  if missing:
    hints = " ".join(f"--gin.{m}=..." for m in missing)
    raise GinConfigError(
        f"required gin macro{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}. "
        f"Set {'them' if len(missing) > 1 else 'it'} in a gin file or on the command line, "
        f"e.g. {hints} (strings need inner quotes: --gin.MODEL_DIR=\"'/tmp/run'\")")


def write_config(model_dir: str) -> None:
  """MODEL_DIR/config.gin: the full configuration of this run, for the record. Best effort:
  an unusable MODEL_DIR is reported by train() with a proper message."""
  try:
    from xlt import run_paths
    model_dir_path = run_paths.resolve(model_dir)
    model_dir_path.mkdir(parents=True, exist_ok=True)
    (model_dir_path / "config.gin").write_text(gin.config_str())
  except Exception:  # noqa: BLE001 - OSError locally, tf / gcsfs errors on a bucket
    pass


def operative_config() -> str:
  return gin.operative_config_str()
