"""orbax checkpoints: async periodic saves, resume from the latest good one, resharding.

A step directory holds the items
  params          the model parameters (also all that `xlt convert hf` writes)
  opt_state       optimizer state
  data_iterator   {"batches_consumed": n}, so a restart sees the same batches
  model_config    the T5Config as JSON, for clear incompatibility errors
Restoring onto a different mesh is orbax's job: it reads each array into the target
shardings it is given.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from xlt import run_paths
from xlt.models import scan_layout

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """save_every_steps: period of async saves; keep: how many to keep (None = all)."""

  save_every_steps: int = 1000
  keep: int | None = 3
  async_save: bool = True


class IncompatibleCheckpointError(ValueError):
  pass


ITEM_HANDLERS = {
    "params": ocp.StandardCheckpointHandler,
    "opt_state": ocp.StandardCheckpointHandler,
    "data_iterator": ocp.JsonCheckpointHandler,
    "model_config": ocp.JsonCheckpointHandler,
}


def open_manager(directory: str, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
  """A manager that knows our items, so a fresh process can read their metadata."""
  return ocp.CheckpointManager(run_paths.resolve(directory), options=options,
                               item_handlers={k: h() for k, h in ITEM_HANDLERS.items()})


def _read_only(directory: str) -> ocp.CheckpointManager:
  return open_manager(directory, ocp.CheckpointManagerOptions(
      read_only=True, save_interval_steps=0, create=False))


def _abstract(tree: Any, shardings: Any) -> Any:
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree,
                      shardings)


def check_compatible(stored: Any, expected: Any, where: str, what: str = "the model config",
                     kind: str = "parameter") -> None:
  """Names the first leaf (`kind`) whose path or shape differs between checkpoint and model."""
  stored_scanned, expected_scanned = scan_layout.is_scanned(stored), scan_layout.is_scanned(expected)
  if None not in (stored_scanned, expected_scanned) and stored_scanned != expected_scanned:
    raise IncompatibleCheckpointError(
        f"checkpoint {where} holds {scan_layout.describe(stored_scanned)} but the model has "
        f"{scan_layout.describe(expected_scanned)}. A run resumes in the layout it was started "
        f"with: add --gin.T5Config.scan_layers={stored_scanned}, or start a new MODEL_DIR with "
        "INITIAL_CHECKPOINT_PATH set to this run (parameters convert between the layouts)")
  stored_flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(stored)}
  expected_flat = {jax.tree_util.keystr(p): v
                   for p, v in jax.tree_util.tree_leaves_with_path(expected)}
  for name, value in expected_flat.items():
    if name not in stored_flat:
      raise IncompatibleCheckpointError(
          f"checkpoint {where} does not match {what}: {kind} {name} "
          f"(shape {tuple(value.shape)}) is missing from the checkpoint")
    have = tuple(stored_flat[name].shape)
    if have != tuple(value.shape):
      raise IncompatibleCheckpointError(
          f"checkpoint {where} does not match {what}: {kind} {name} has shape "
          f"{have} in the checkpoint but {tuple(value.shape)} in the model")
  extra = sorted(set(stored_flat) - set(expected_flat))
  if extra:
    raise IncompatibleCheckpointError(
        f"checkpoint {where} does not match {what}: it has {kind} {extra[0]} "
        f"(shape {tuple(stored_flat[extra[0]].shape)}) that the model does not")


class Checkpointer:
  """Saves and restores train states under `directory` (the run's MODEL_DIR/checkpoints)."""

  def __init__(self, directory: str, config: CheckpointConfig = CheckpointConfig()):
    self.directory = directory
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=config.save_every_steps, max_to_keep=config.keep,
        enable_async_checkpointing=config.async_save, create=True)
    self.manager = open_manager(directory, options)
    self._unreadable: list[int] = []  # steps restore_latest skipped

  def save(self, step: int, state, data_state: dict, model_config: dict,
           force: bool = False) -> bool:
    # orbax saves no step <= its latest one, so an unreadable step skipped on restore
    # would block saving the retrained steps: replace it when its turn comes.
    for stale in [s for s in self._unreadable if s >= step]:
      self._unreadable.remove(stale)
      if stale in self.manager.all_steps():
        log.warning("removing unreadable checkpoint %s/%s to save step %d", self.directory,
                    stale, step)
        self.manager.delete(stale)
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        opt_state=ocp.args.StandardSave(state.opt_state),
        data_iterator=ocp.args.JsonSave(data_state),
        model_config=ocp.args.JsonSave(model_config))
    return self.manager.save(step, args=args, force=force)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_latest(self, abstract_state, shardings) -> tuple[int, Any, dict] | None:
    """(step, state, data_state) from the newest readable checkpoint, or None.

    A checkpoint that fails to read (partially written, corrupted) is skipped with a
    warning and the one before it is used; a config mismatch is an error, not skipped.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    self._unreadable = []
    for i, step in enumerate(steps):
      try:
        metadata = self.manager.item_metadata(step)
        stored, stored_opt = metadata["params"], metadata["opt_state"]
        if stored is None or stored_opt is None:
          raise ValueError("no params or opt_state metadata")
      except Exception as e:  # noqa: BLE001 - any read failure means "not usable"
        self._warn_unreadable(step, e, steps[i + 1:])
        continue
      where = f"{self.directory} (step {step})"
      check_compatible(_tree_metadata(stored), abstract_state.params, where)
      # A changed optimizer is a config error too, not a reason to silently start over.
      check_compatible(_tree_metadata(stored_opt),
                       ocp.tree.serialize_tree(abstract_state.opt_state, keep_empty_nodes=True),
                       where, what="the optimizer config (OptimizerConfig)",
                       kind="optimizer state entry")
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(abstract_state.params, shardings.params)),
            opt_state=ocp.args.StandardRestore(
                _abstract(abstract_state.opt_state, shardings.opt_state)),
            data_iterator=ocp.args.JsonRestore()))
      except Exception as e:  # noqa: BLE001
        self._warn_unreadable(step, e, steps[i + 1:])
        continue
      state = abstract_state.replace(step=jax.device_put(np.int32(step), shardings.step),
                                     params=restored["params"],
                                     opt_state=restored["opt_state"])
      return step, state, dict(restored["data_iterator"])
    return None

  def _warn_unreadable(self, step: int, error: Exception, older: list[int]) -> None:
    self._unreadable.append(step)
    fallback = f"falling back to step {older[0]}" if older else "no older checkpoint: starting fresh"
    log.warning("checkpoint %s/%s is unreadable (%s: %s); %s", self.directory, step,
                type(error).__name__, str(error).splitlines()[0][:200], fallback)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _tree_metadata(metadata: Any) -> Any:
  """orbax item metadata -> a pytree of objects with .shape."""
  tree = getattr(metadata, "tree", metadata)
  return tree


def _resolve_step_dir(path: str) -> tuple[str, int]:
  """A run dir (MODEL_DIR), its checkpoints/ dir, or one step dir -> (manager dir, step).
  Local paths or bucket URLs (gs://...)."""
  root = run_paths.resolve(path)
  for candidate in (root / "checkpoints", root):
    if candidate.is_dir():
      steps = [int(d.name) for d in candidate.iterdir() if d.name.isdigit() and d.is_dir()]
      if steps:
        return str(candidate), max(steps)
  if root.name.isdigit() and root.is_dir():
    return str(root.parent), int(root.name)
  raise FileNotFoundError(
      f"no checkpoint found at {root}: expected a run directory (MODEL_DIR), its "
      "checkpoints/ folder, or one numbered step folder")


def restore_params(path: str, abstract_params: Any, param_shardings: Any) -> tuple[Any, int]:
  """Only the parameters, laid out by `param_shardings` (any mesh). Returns (params, step).

  A checkpoint in the other layer layout (per-layer vs scanned, T5Config.scan_layers) is
  read in its own layout, sharded like the target, and converted on the devices.
  """
  directory, step = _resolve_step_dir(path)
  manager = _read_only(directory)
  try:
    stored = manager.item_metadata(step)["params"]
    where = f"{directory}/{step}"
    if stored is None:
      raise FileNotFoundError(f"checkpoint {where} has no `params` item")
    stored = _tree_metadata(stored)
    target = _abstract(abstract_params, param_shardings)
    stored_scanned, target_scanned = (scan_layout.is_scanned(stored),
                                      scan_layout.is_scanned(abstract_params))
    convert = None not in (stored_scanned, target_scanned) and stored_scanned != target_scanned
    source = scan_layout.abstract_to_layout(target, stored_scanned) if convert else target
    check_compatible(stored, source, where)
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(source)))["params"]
    if convert:
      log.info("converting %s from %s to %s", where, scan_layout.describe(stored_scanned),
               scan_layout.describe(target_scanned))
      restored = jax.jit(lambda t: scan_layout.to_layout(t, target_scanned),
                         out_shardings=param_shardings)(restored)
    return restored, step
  finally:
    manager.close()


def read_model_config(path: str) -> dict | None:
  """The model_config item saved with a checkpoint (None if it has none)."""
  directory, step = _resolve_step_dir(path)
  if not (run_paths.resolve(directory) / str(step) / "model_config").is_dir():
    return None
  manager = _read_only(directory)
  try:
    return dict(manager.restore(step, args=ocp.args.Composite(
        model_config=ocp.args.JsonRestore()))["model_config"])
  finally:
    manager.close()
