"""Multi-controller start-up: one process per host, all running the same program."""
from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger(__name__)

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def initialize_from_env() -> None:
  """Calls jax.distributed.initialize when the environment asks for several processes.

  - JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES, JAX_PROCESS_ID: explicit
    (GPU clusters, or two CPU processes over 127.0.0.1 in tests).
  - On a Cloud TPU pod slice, SLURM, or Open MPI, jax detects everything itself:
    set XLT_DISTRIBUTED=1 to call initialize() without arguments.
  Idempotent: a second call does nothing.
  """
  if _initialized():
    return
  coordinator = os.environ.get(ENV_COORDINATOR)
  if coordinator:
    num = int(os.environ.get(ENV_NUM_PROCESSES, "1"))
    pid = int(os.environ.get(ENV_PROCESS_ID, "0"))
    # Cross-process collectives of the CPU backend go over gloo (no effect on GPU/TPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num,
                               process_id=pid)
  elif os.environ.get("XLT_DISTRIBUTED") == "1":
    jax.distributed.initialize()
  else:
    return
  log.info("jax.distributed: process %d of %d, %d local / %d global devices",
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())


def _initialized() -> bool:
  from jax._src import distributed as _distributed  # the only public signal is internal
  return _distributed.global_state.client is not None
