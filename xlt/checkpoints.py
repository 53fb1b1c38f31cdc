"""orbax checkpoints: async periodic saves, resume from the latest good one, resharding.

A checkpoint that cannot be read is never deleted: when an older one can be read, the
unreadable newer ones are moved aside to `checkpoints/unreadable/<step>-<time>` (out of
orbax's view, so the run can save those steps again); when none can be read, the run
stops and names each step, unless CheckpointConfig.discard_unreadable asks to move them
all aside and start over.

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
import datetime
import logging
import sys
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from xlt import run_paths
from xlt.models import scan_layout

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """save_every_steps: period of async saves; keep: how many to keep (None = all).

  discard_unreadable: when MODEL_DIR has checkpoints and none can be read, move them all
  aside (checkpoints/unreadable/) and start over, instead of stopping. Off: a transient
  read problem (a bucket or NFS hiccup) must not cost a run its progress."""

  save_every_steps: int = 1000
  keep: int | None = 3
  async_save: bool = True
  discard_unreadable: bool = False


class IncompatibleCheckpointError(ValueError):
  pass


class UnreadableCheckpointsError(IncompatibleCheckpointError):
  """No checkpoint of the run can be read: unusable for this run like an incompatible one."""


UNREADABLE_DIR = "unreadable"  # under checkpoints/: steps moved out of orbax's view


def _short_reason(error: Exception) -> str:
  text = (str(error).splitlines() or [""])[0].strip()
  text = text[:120] + "..." if len(text) > 120 else text
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unreadable_error(directory: str, reasons: dict[int, str], hint: str) -> \
    UnreadableCheckpointsError:
  steps = "; ".join(f"step {step} ({reason})" for step, reason in reasons.items())
  return UnreadableCheckpointsError(
      f"no checkpoint in {directory} can be read: {steps}. {hint}")


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
  """Saves and restores train states under `directory` (the run's MODEL_DIR/checkpoints).

  Opened by the run that holds MODEL_DIR's lock (xlt.run_lock): unfinished saves left in
  it by an interrupted run (orbax's `<step>.orbax-checkpoint-tmp` folders, never a
  complete checkpoint) are removed first."""

  def __init__(self, directory: str, config: CheckpointConfig = CheckpointConfig()):
    self.directory = directory
    self.config = config
    if jax.process_index() == 0:
      remove_unfinished_saves(directory)
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=config.save_every_steps, max_to_keep=config.keep,
        enable_async_checkpointing=config.async_save, create=True)
    self.manager = open_manager(directory, options)

  def save(self, step: int, state, data_state: dict, model_config: dict,
           force: bool = False) -> bool:
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        opt_state=ocp.args.StandardSave(state.opt_state),
        data_iterator=ocp.args.JsonSave(data_state),
        model_config=ocp.args.JsonSave(model_config))
    return self.manager.save(step, args=args, force=force)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_latest(self, abstract_state, shardings) -> tuple[int, Any, dict] | None:
    """(step, state, data_state) from the newest readable checkpoint, or None if there is
    no checkpoint.

    A checkpoint that fails to read (partially written, corrupted) is skipped with a
    warning, the one before it is used, and the skipped ones are moved aside so their
    steps can be saved again. When none can be read: UnreadableCheckpointsError, nothing
    touched (or, with CheckpointConfig.discard_unreadable, all moved aside and None).
    A config mismatch is an error, not skipped.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    unreadable: dict[int, str] = {}
    _quiet_late_read_callbacks()  # before the first read: its callbacks may outrun the error
    for step in steps:
      try:
        restored = self._restore(step, abstract_state, shardings)
      except IncompatibleCheckpointError:
        raise
      except Exception as e:  # noqa: BLE001 - any read failure means "not usable"
        unreadable[step] = _short_reason(e)
        log.warning("checkpoint %s/%s is unreadable (%s)", self.directory, step,
                    unreadable[step])
        continue
      if unreadable:
        log.warning("falling back to step %d of %s", step, self.directory)
        self._move_aside(unreadable)
      return restored
    if not unreadable:
      return None
    if not self.config.discard_unreadable:
      raise _unreadable_error(
          self.directory, unreadable,
          "Nothing was changed; if the storage was briefly unavailable, run again. To move "
          f"them aside ({UNREADABLE_DIR}/) and start over, add "
          "--gin.CheckpointConfig.discard_unreadable=True")
    log.warning("no checkpoint in %s can be read; CheckpointConfig.discard_unreadable=True: "
                "moving them aside and starting over", self.directory)
    self._move_aside(unreadable)
    return None

  def _restore(self, step: int, abstract_state, shardings) -> tuple[int, Any, dict]:
    metadata = self.manager.item_metadata(step)
    stored, stored_opt = metadata["params"], metadata["opt_state"]
    if stored is None or stored_opt is None:
      raise ValueError("no params or opt_state metadata")
    where = f"{self.directory} (step {step})"
    check_compatible(_tree_metadata(stored), abstract_state.params, where)
    # A changed optimizer is a config error too, not a reason to silently start over.
    check_compatible(_tree_metadata(stored_opt),
                     ocp.tree.serialize_tree(abstract_state.opt_state, keep_empty_nodes=True),
                     where, what="the optimizer config (OptimizerConfig)",
                     kind="optimizer state entry")
    restored = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(abstract_state.params, shardings.params)),
        opt_state=ocp.args.StandardRestore(
            _abstract(abstract_state.opt_state, shardings.opt_state)),
        data_iterator=ocp.args.JsonRestore()))
    state = abstract_state.replace(step=jax.device_put(np.int32(step), shardings.step),
                                   params=restored["params"],
                                   opt_state=restored["opt_state"])
    return step, state, dict(restored["data_iterator"])

  def _move_aside(self, steps: dict[int, str]) -> None:
    """Renames unreadable step folders into checkpoints/unreadable/ (never deletes them)."""
    if jax.process_index() == 0:
      aside = run_paths.resolve(self.directory) / UNREADABLE_DIR
      aside.mkdir(parents=True, exist_ok=True)
      stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
      for step, reason in steps.items():
        target = aside / f"{step}-{stamp}"
        (run_paths.resolve(self.directory) / str(step)).rename(target)
        log.warning("moved unreadable checkpoint %s/%s (%s) aside to %s", self.directory, step,
                    reason, target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("xlt_checkpoints_moved_aside")
    self.manager.reload()  # orbax lists steps once: forget the moved ones

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def resume_or_initialise(checkpointer: Checkpointer, state, shardings,
                         initial_checkpoint_path: str | None,
                         read_initial_params: Callable[[str], tuple[Any, int]]
                         ) -> tuple[Any, dict]:
  """Where a run starts: (state, data_state).

  The newest readable checkpoint of MODEL_DIR (a resume), else the parameters of
  `initial_checkpoint_path` read by `read_initial_params(path) -> (params, step)` (fine-
  tuning), else `state` as initialised. MODEL_DIR checkpoints that all fail to read stop
  the run (UnreadableCheckpointsError) rather than silently start over.
  """
  restored = checkpointer.restore_latest(state, shardings)
  if restored is not None:
    step, state, data_state = restored
    log.info("resumed from %s at step %d", checkpointer.directory, step)
    return state, data_state
  if initial_checkpoint_path:
    params, from_step = read_initial_params(initial_checkpoint_path)
    state = state.replace(params=params)
    log.info("initialised params from %s (step %d)", initial_checkpoint_path, from_step)
  return state, {"batches_consumed": 0}


def _quiet_late_read_callbacks() -> None:
  """After a failed read, tensorstore completes the other pending reads of that restore
  and their callbacks find orbax's event loop closed: one traceback each (dozens), none of
  them news. Those ("Event loop is closed") go to the debug log; others are printed."""
  previous = sys.excepthook
  if getattr(previous, "quiets_late_reads", False):
    return

  def hook(kind, value, traceback):
    if kind is RuntimeError and str(value) == "Event loop is closed":
      log.debug("late read callback after a failed restore: %s", value)
      return
    previous(kind, value, traceback)

  hook.quiets_late_reads = True
  sys.excepthook = hook


def remove_unfinished_saves(directory: str) -> None:
  """Removes `*.orbax-checkpoint-tmp*` folders: saves cut off by a kill or a full disk.

  Only the run holding MODEL_DIR's lock may call this: it must not race a running save."""
  root = run_paths.resolve(directory)
  if not root.is_dir():
    return
  for stale in sorted(root.glob(f"*{TMP_SUFFIX}*")):
    log.warning("removing %s: an unfinished save left by an interrupted run", stale)
    stale.rmtree() if stale.is_dir() else stale.unlink()


TMP_SUFFIX = ".orbax-checkpoint-tmp"


def _tree_metadata(metadata: Any) -> Any:
  """orbax item metadata -> a pytree of objects with .shape."""
  tree = getattr(metadata, "tree", metadata)
  return tree


def _resolve_steps(path: str) -> tuple[str, list[int], bool]:
  """A run dir (MODEL_DIR), its checkpoints/ dir, or one step dir -> (manager dir, steps
  newest first, whether one step was named). Local paths or bucket URLs (gs://...)."""
  root = run_paths.resolve(path)
  for candidate in (root / "checkpoints", root):
    if candidate.is_dir():
      steps = [int(d.name) for d in candidate.iterdir() if d.name.isdigit() and d.is_dir()]
      if steps:
        return str(candidate), sorted(steps, reverse=True), False
  if root.name.isdigit() and root.is_dir():
    return str(root.parent), [int(root.name)], True
  raise FileNotFoundError(
      f"no checkpoint found at {root}: expected a run directory (MODEL_DIR), its "
      "checkpoints/ folder, or one numbered step folder")


def _newest_readable(path: str, read: Callable[[ocp.CheckpointManager, str, int], Any]
                     ) -> tuple[Any, int]:
  """(read(manager, directory, step), step) for the newest step `read` succeeds on.

  Like a resume, a run directory falls back past unreadable steps with a warning (they
  are left where they are: readers do not move a run's files); a config mismatch
  (IncompatibleCheckpointError) is raised at once."""
  directory, steps, named = _resolve_steps(path)
  manager = _read_only(directory)
  unreadable: dict[int, str] = {}
  _quiet_late_read_callbacks()  # before the first read: its callbacks may outrun the error
  try:
    for step in steps:
      try:
        value = read(manager, directory, step)
      except IncompatibleCheckpointError:
        raise
      except Exception as e:  # noqa: BLE001 - any read failure means "not usable"
        unreadable[step] = _short_reason(e)
        continue
      if unreadable:
        log.warning("checkpoint %s: %s unreadable; falling back to step %d", directory,
                    ", ".join(f"step {s} ({r})" for s, r in unreadable.items()), step)
      return value, step
  finally:
    manager.close()
  hint = ("Name another step folder" if named else
          "If the storage was briefly unavailable, run again")
  raise _unreadable_error(directory, unreadable, hint)


def restore_params(path: str, abstract_params: Any, param_shardings: Any) -> tuple[Any, int]:
  """Only the parameters, laid out by `param_shardings` (any mesh). Returns (params, step).

  A checkpoint in the other layer layout (per-layer vs scanned, T5Config.scan_layers) is
  read in its own layout, sharded like the target, and converted on the devices.
  """
  target = _abstract(abstract_params, param_shardings)
  target_scanned = scan_layout.is_scanned(abstract_params)

  def read(manager, directory, step):
    stored = manager.item_metadata(step)["params"]
    where = f"{directory}/{step}"
    if stored is None:
      raise FileNotFoundError(f"checkpoint {where} has no readable `params` item")
    stored = _tree_metadata(stored)
    stored_scanned = scan_layout.is_scanned(stored)
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
    return restored

  return _newest_readable(path, read)


def read_model_config(path: str) -> dict | None:
  """The model_config item saved with the newest readable checkpoint (None if it has none)."""

  def read(manager, directory, step):
    if not (run_paths.resolve(directory) / str(step) / "model_config").is_dir():
      return None
    return dict(manager.restore(step, args=ocp.args.Composite(
        model_config=ocp.args.JsonRestore()))["model_config"])

  return _newest_readable(path, read)[0]
