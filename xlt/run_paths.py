"""Where a run reads and writes: local directories or bucket URLs (gs://...).

MODEL_DIR, CHECKPOINT_PATH and OUTPUT_PATH go through `etils.epath`, as orbax does: a local
path stays a local file, `gs://bucket/run` uses TensorFlow's GCS file system (tf.io.gfile;
gcsfs where TensorFlow is absent). Checkpoint arrays go from orbax to tensorstore's own GCS
driver; TensorBoard events from tensorboardX to google-cloud-storage. Credentials are the
machine's (a TPU VM's service account, `gcloud auth application-default login`).
"""
from __future__ import annotations

import os

from etils import epath


def is_url(path: str) -> bool:
  """gs://..., s3://...: a bucket, not this machine's file system."""
  return "://" in str(path)


def resolve(path: str | os.PathLike) -> epath.Path:
  """An epath.Path; local paths are made absolute (a run may chdir, orbax wants them so)."""
  path = os.fspath(path)
  return epath.Path(path if is_url(path) else os.path.abspath(path))


def join(path: str, *parts: str) -> str:
  """String join that keeps `gs://` intact (os.path.join does too, abspath would not)."""
  return str(resolve(path).joinpath(*parts))


class NotWritableError(OSError):
  pass


def ensure_writable(path: str, what: str = "MODEL_DIR", flag: str = "--gin.MODEL_DIR") -> None:
  """Creates `path` and writes/removes a probe file in it, so a bad path fails before any
  compute. On a bucket the probe is one small object."""
  directory = resolve(path)
  probe = directory / f".write_probe_{os.getpid()}"
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
  except Exception as e:  # noqa: BLE001 - OSError locally; tf / gcsfs / google errors on buckets
    reason = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
    raise NotWritableError(f"{what} {path!r} is not writable: {reason}. Choose another with "
                           f"{flag}=\"'/path/to/run'\" (or a gs://bucket/path)") from None
