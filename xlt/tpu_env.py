"""libtpu away from a TPU VM: answer its start-up questions so that it stays quiet.

libtpu (from the `tpu` and `test` extras) is loaded by JAX whenever it is installed, and by
`xlt compile --topology v4-32` to compile for a slice. Off a TPU VM it asks the GCE metadata
server for the worker host names and the accelerator type, and prints errors when there is
none; it also locks /tmp/libtpu_lockfile, so a second process could not load it. With no
TPU chips attached there is nothing to protect: give it harmless answers (the slice
compiled for is always the explicit topology description) and allow several processes.
On a TPU VM nothing is changed.
"""
from __future__ import annotations

import glob
import os


def on_tpu_vm() -> bool:
  """TPU chips are attached (v4+ expose /dev/accel*, v5e/v6e /dev/vfio/<n>)."""
  return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def quiet_libtpu_off_tpu() -> None:
  """Sets the answers (never over the user's own settings); call before JAX loads libtpu."""
  if on_tpu_vm():
    return
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v4-8")
