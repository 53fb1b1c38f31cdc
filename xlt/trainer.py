"""`train()`: a plain typed function; gin binds its arguments at the entry point (xlt.cli)."""
from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import time
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from xlt import checkpoints, distributed, gin_config, losses, partitioning, run_lock, run_paths
from xlt import trainable
from xlt.data import DataConfig
from xlt.divergence import DivergedError, DivergenceConfig, Guard, params_health
from xlt.metrics_log import MetricsLogger, summary_line
from xlt import models
from xlt.models import ModelConfig
from xlt.optimizers import OptimizerConfig
from xlt.quant import rtn
from xlt.quant import tree as quant_tree
from xlt.train_state import boxed_params, create_sharded_state
from xlt.train_step import jit_train_step, make_train_step

log = logging.getLogger(__name__)


NonFiniteLossError = DivergedError  # the run diverged (xlt.divergence): exit 1


class NoTrainingDataError(ValueError):
  """The task or mixture gave not one batch: nothing is trained or saved (exit 2)."""


class TrainStepsError(ValueError):
  """TRAIN_STEPS is not a positive number of steps (exit 2, before any work)."""


ModelDirError = run_paths.NotWritableError  # MODEL_DIR cannot hold the run


@dataclasses.dataclass
class TrainResult:
  final_step: int
  last_metrics: dict[str, float]
  stopped_by_signal: str | None = None


class _StopSignal:
  """Turns SIGTERM/SIGINT (preemption, Ctrl-C) into a flag the loop checks after each step."""

  def __init__(self):
    self.received: str | None = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread (e.g. called from a worker thread)
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _should_stop(stop: _StopSignal, step: int, checkpointer) -> bool:
  if jax.process_count() == 1:
    return stop.received is not None
  # All hosts must agree on the step at which they save and leave, also when only some
  # of them got the signal: a tiny all-gather of the local flags, plus jax's own
  # preemption notice (TPU maintenance events).
  from jax.experimental import multihost_utils
  local = np.int32(stop.received is not None)
  anyone = bool(np.any(multihost_utils.process_allgather(local)))
  return anyone or checkpointer.manager.reached_preemption(step)


def train(*, model_dir: str, model: ModelConfig, data: DataConfig, train_steps: int,
          optimizer: OptimizerConfig = OptimizerConfig(),
          loss: losses.LossConfig = losses.LossConfig(),
          mesh: partitioning.MeshConfig = partitioning.MeshConfig(),
          checkpoint: checkpoints.CheckpointConfig = checkpoints.CheckpointConfig(),
          initial_checkpoint_path: str | None = None, num_microbatches: int = 1,
          log_every_steps: int = 50, seed: int = 0, progress_bar: bool = True,
          trainable_params: str | None = None,
          divergence: DivergenceConfig = DivergenceConfig()) -> TrainResult:
  """Trains `model` on `data` for `train_steps` optimizer steps, resuming if MODEL_DIR has
  a checkpoint, else starting from `initial_checkpoint_path` (params only) or scratch.

  `trainable_params`: regex over parameter paths of what is trained (xlt.trainable; None:
  every floating-point parameter); PEQA trains only the quantization scales. A float
  initial checkpoint is quantized on the devices when the model config is quantized.
  `divergence`: when the run counts as diverged and stops before saving (xlt.divergence)."""
  if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps <= 0:
    raise TrainStepsError(f"TRAIN_STEPS must be a positive number of steps, got {train_steps!r}")
  distributed.initialize_from_env()
  # The data layer (TensorFlow) is imported only when training; names are checked first.
  from xlt.data.pipeline import BatchIterator, decoder_feature_converter
  from xlt.data.registry import get_task_or_mixture, use_vocabulary
  use_vocabulary(data.vocabulary, get_task_or_mixture(data.mixture_or_task_name),
                 model.vocab_size)
  if data.task_feature_lengths is None:
    raise ValueError("TASK_FEATURE_LENGTHS must be set for training")

  lock = None  # one run per MODEL_DIR, taken before anything is written there
  if jax.process_index() == 0:
    run_paths.ensure_writable(model_dir)
    lock = run_lock.acquire(model_dir)  # released at the end, or at exit on an early error
    gin_config.write_config(model_dir)  # the record of this run, now that it is ours
    if data.mixture_or_task_name.startswith("insta/"):  # the selection, beside the run
      from xlt.insta.selection import write_beside_run
      write_beside_run(data.mixture_or_task_name, model_dir)
  mesh_ = partitioning.make_mesh(mesh)
  rules = mesh.rules
  tx, schedule = optimizer.build()
  state, shardings, boxed = create_sharded_state(model, tx, mesh_, rules, seed, trainable_params)
  trainable.check(state.params, trainable_params)
  partitioning.assert_params_sharded(state.params, boxed, mesh_, rules)
  _log_model(model, state.params, mesh_, trainable_params)

  checkpointer = checkpoints.Checkpointer(run_paths.join(model_dir, "checkpoints"), checkpoint)
  state, data_state = checkpoints.resume_or_initialise(
      checkpointer, state, shardings, initial_checkpoint_path,
      lambda path: quant_tree.restore_params(path, model, state.params, shardings.params, mesh_,
                                             rules, boxed_params))
  start = int(jax.device_get(state.step))

  batches = BatchIterator(data, jax.process_index(), jax.process_count(),
                          batches_consumed=data_state["batches_consumed"],
                          feature_converter_cls=(decoder_feature_converter
                                                 if models.is_decoder_only(model) else None))
  batch_sharding = partitioning.batch_sharding(mesh_)
  step_fn = make_train_step(models.build(model), tx, schedule, loss, num_microbatches, seed,
                            trainable_params)
  jit_step = jit_train_step(step_fn, shardings, mesh_)

  logger = MetricsLogger(model_dir, resume_step=start)  # drops rows past `start`
  config_dict = model.to_dict()
  last: dict[str, float] = {}
  health = jax.jit(params_health, out_shardings=partitioning.replicated(mesh_))
  guard = Guard(divergence, checkpointer.directory, start, _health(health, state.params)[1])

  def save(step: int, state, force: bool = False) -> None:
    # The loss only shows the params *before* an update: the params themselves must pass
    # the guard before they may replace the last good checkpoint.
    finite, norm = _health(health, state.params)
    guard.check_save(step, finite, norm, last.get("loss"), checkpointer.latest_step())
    if checkpointer.save(step, state, batches.state(), config_dict, force=force):
      guard.passed(step, norm)

  stopped = None
  bar = tqdm(total=train_steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
             disable=not progress_bar or jax.process_index() != 0)
  try:
    with _StopSignal() as stop:
      step = start
      while step < train_steps:
        t0 = time.perf_counter()
        try:
          local = next(batches)
        except StopIteration:
          if step == start:
            raise _no_data(data, batches.batches_consumed, step) from None
          log.warning("data %r ran out after %d batches; stopping at step %d",
                      data.mixture_or_task_name, batches.batches_consumed, step)
          break
        batch = {k: jax.make_array_from_process_local_data(batch_sharding, v)
                 for k, v in local.items()}
        with partitioning.activation_rules(mesh_, rules):
          new_state, metrics = jit_step(state, batch)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        guard.check_loss(step + 1, metrics["loss"], checkpointer.latest_step())
        state, step = new_state, step + 1
        elapsed = time.perf_counter() - t0
        metrics["step_time"] = elapsed
        metrics["tokens_per_second"] = _tokens(local) * jax.process_count() / elapsed
        last = metrics
        logger.write(step, metrics)
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
        if step % log_every_steps == 0 or step == train_steps:
          if jax.process_index() == 0:
            tqdm.write(summary_line(step, train_steps, metrics))
        if step % checkpoint.save_every_steps == 0:
          save(step, state)
        if _should_stop(stop, step, checkpointer):
          stopped = stop.received or "SIGTERM"  # another host got it, or a preemption notice
          break
      if checkpointer.latest_step() != step:
        save(step, state, force=True)
  finally:
    bar.close()
    checkpointer.wait()
    checkpointer.close()
    logger.close()
    if lock is not None:
      lock.release()
  if stopped:
    log.warning("received %s: saved step %d to %s and stopped", stopped, step,
                checkpointer.directory)
  return TrainResult(final_step=step, last_metrics=last, stopped_by_signal=stopped)


def _health(health, params: Any) -> tuple[bool, float]:
  finite, norm = jax.device_get(health(params))
  return bool(finite), float(norm)


def _no_data(data: DataConfig, consumed: int, step: int) -> NoTrainingDataError:
  where = ("produced no examples" if not consumed else
           f"has no batch left after the {consumed} batches its checkpoint (step {step}) used")
  return NoTrainingDataError(
      f"task or mixture {data.mixture_or_task_name!r} (MIXTURE_OR_TASK_NAME), split "
      f"{data.split!r}, {where}: nothing was trained or saved. Check its data files "
      f"(`xlt tasks check {data.mixture_or_task_name}`)")


def _tokens(batch: dict[str, np.ndarray]) -> int:
  if "encoder_input_tokens" not in batch:  # decoder-only: inputs and targets in one row
    return int(np.sum(batch["decoder_target_tokens"] > 0))
  return int(np.sum(batch["encoder_input_tokens"] > 0) + np.sum(batch["decoder_loss_weights"]))


def _log_model(config: ModelConfig, params: Any, mesh, trainable_params: str | None) -> None:
  trained, n = trainable.count(params, trainable_params)
  log.info("model: %s %.1fM parameters (d_model=%d, layers=%s, vocab=%d); mesh %s",
           type(config).__name__, n / 1e6, config.d_model, models.layers_text(config),
           config.vocab_size, dict(mesh.shape))
  if jax.process_index() == 0:
    quant = (f", {config.quant_bits}-bit weights {rtn.nbytes(params) / 2**20:.1f} MiB"
             if config.quant_bits else "")
    trains = f" ({trained / 1e6:.3f}M trained{quant})" if trained != n or quant else ""
    print(f"xlt: {n/1e6:.2f}M parameters{trains} on mesh {dict(mesh.shape)} "
          f"({jax.device_count()} {jax.devices()[0].platform} devices, "
          f"{jax.process_count()} processes)", file=sys.stderr)
