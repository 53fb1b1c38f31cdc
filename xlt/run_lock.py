"""One training run per MODEL_DIR: `MODEL_DIR/run.lock`, naming its holder.

Two trainers writing one MODEL_DIR interleave metrics, break keep-N and delete each
other's saves, so the second one refuses to start and names the first (host, pid, start).

Local MODEL_DIR: the file is held with flock(2). The kernel drops the lock when its holder
dies (SIGKILL included), so a lock file left by a killed run is free: it is taken over with
a warning naming the run that left it. On NFS, flock is the server's lock (Linux NFS v3/v4).

Bucket (gs://..., or a file system without flock): a lease file. The holder rewrites its
expiry every LEASE_SECONDS / 4 from a daemon thread; a lease past its expiry (a run that
was killed) is taken over with a warning. epath's object stores have no create-if-absent,
so taking the lock is: write, wait SETTLE_SECONDS, read back; the last writer wins and the
others refuse. Limits: two starts whose writes land more than SETTLE_SECONDS apart but
whose checks both saw no lock (a start that stalls that long between them) could both
run; expiry compares the clocks of two machines (keep them NTP-synced); a holder that
stalls for a whole lease (no refresh) can be taken over while still alive, and then logs
an error. google-cloud-storage's `if_generation_match` would make the take atomic, but the
GCS emulator the tests use does not implement preconditions.
"""
from __future__ import annotations

import atexit
import datetime
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid

from etils import epath

from xlt import run_paths

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
LEASE_SECONDS = 120.0
SETTLE_SECONDS = 2.0


class RunLockedError(run_paths.NotWritableError):
  """MODEL_DIR is in use by another run: a usage error (exit 2), like an unwritable one."""


def _describe(holder: dict) -> str:
  return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started "
          f"{holder.get('started', '?')}")


def _new_holder() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "token": uuid.uuid4().hex}


def _parse(text: str) -> dict:
  try:
    holder = json.loads(text)
    return holder if isinstance(holder, dict) else {}
  except ValueError:
    return {}


def _locked_error(model_dir: str, holder: dict) -> RunLockedError:
  return RunLockedError(
      f"MODEL_DIR {model_dir!r} is in use by another training run ({_describe(holder)}; "
      f"lock file {run_paths.join(model_dir, LOCK_NAME)}). Wait for it to finish, stop it, or "
      "choose another --gin.MODEL_DIR")


class RunLock:
  """Held from acquire() until release() (idempotent; also run at interpreter exit)."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.path = run_paths.resolve(model_dir) / LOCK_NAME
    self.holder = _new_holder()
    self._fd: int | None = None
    self._stop_refresh = threading.Event()
    self._refresher: threading.Thread | None = None
    self.lost = False  # a bucket lease taken over while this run still held it

  def acquire(self) -> "RunLock":
    if run_paths.is_url(self.model_dir) or not self._acquire_flock():
      self._acquire_lease()
    atexit.register(self.release)
    return self

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()

  # ------------------------------------------------------------------ local: flock(2)

  def _acquire_flock(self) -> bool:
    """True when held; False when this file system has no flock (use a lease)."""
    import fcntl
    path = os.fspath(self.path)
    while True:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
          raise _locked_error(self.model_dir, self._read_holder_while_held()) from None
        log.info("no flock on %s (%s): using a lease file", path, e.strerror)
        return False
      try:  # the previous holder may have removed the file between our open and flock
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    previous = _parse(os.read(fd, 1 << 16).decode(errors="replace"))
    if previous:
      log.warning("taking over the lock of MODEL_DIR %s left by a run that is gone (%s)",
                  self.model_dir, _describe(previous))
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(self.holder).encode())
    os.fsync(fd)
    self._fd = fd
    return True

  def _read_holder_while_held(self) -> dict:
    for _ in range(20):  # the holder writes its name just after taking the lock
      holder = _parse(_read_text(self.path))
      if holder:
        return holder
      time.sleep(0.05)
    return {}

  # ------------------------------------------------------------------ buckets: a lease

  def _acquire_lease(self) -> None:
    current = _parse(_read_text(self.path))
    if current and not _expired(current) and not _gone_from_this_host(current):
      raise _locked_error(self.model_dir, current)
    if current:
      log.warning("taking over the lock of MODEL_DIR %s from a run that is gone (%s; lease "
                  "until %s)", self.model_dir, _describe(current),
                  _when(current.get("expires", 0)))
    self._write_lease()
    time.sleep(SETTLE_SECONDS)
    winner = _parse(_read_text(self.path))
    if winner.get("token") != self.holder["token"]:
      raise _locked_error(self.model_dir, winner)
    self._refresher = threading.Thread(target=self._refresh, name="xlt-run-lock", daemon=True)
    self._refresher.start()

  def _write_lease(self) -> None:
    self.holder["expires"] = time.time() + LEASE_SECONDS
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.path.write_text(json.dumps(self.holder))

  def _refresh(self) -> None:
    while not self._stop_refresh.wait(LEASE_SECONDS / 4):
      try:
        current = _parse(_read_text(self.path))
        if current.get("token") != self.holder["token"]:
          self.lost = True
          log.error("the lock of MODEL_DIR %s was taken over by %s while this run held it",
                    self.model_dir, _describe(current))
          return
        self._write_lease()
      except Exception as e:  # noqa: BLE001 - a bucket hiccup: retry at the next period
        log.warning("could not refresh the lock of MODEL_DIR %s: %s", self.model_dir, e)

  # ------------------------------------------------------------------ release

  def release(self) -> None:
    self._stop_refresh.set()
    if self._fd is not None:
      try:
        os.unlink(os.fspath(self.path))  # while still held: a waiting opener re-checks
      except FileNotFoundError:
        pass
      os.close(self._fd)
      self._fd = None
    elif self._refresher is not None:
      self._refresher = None
      try:
        if _parse(_read_text(self.path)).get("token") == self.holder["token"]:
          self.path.unlink()
      except Exception as e:  # noqa: BLE001 - the lease then expires on its own
        log.warning("could not remove the lock of MODEL_DIR %s: %s", self.model_dir, e)
    atexit.unregister(self.release)


def acquire(model_dir: str) -> RunLock:
  """The lock of `model_dir` (created if absent), or RunLockedError naming its holder."""
  return RunLock(model_dir).acquire()


def _read_text(path: epath.Path) -> str:
  try:
    return path.read_text()
  except FileNotFoundError:
    return ""


def _expired(holder: dict) -> bool:
  return float(holder.get("expires", 0)) < time.time()


def _gone_from_this_host(holder: dict) -> bool:
  """The holder ran here and its process has ended (a kill, not a stalled lease)."""
  if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
    return False
  try:
    os.kill(holder["pid"], 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, another user's
    return False
  return False


def _when(timestamp: float) -> str:
  return datetime.datetime.fromtimestamp(float(timestamp)).astimezone().isoformat(
      timespec="seconds")
