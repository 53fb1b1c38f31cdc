"""How an `xlt` process ends: stop signals before the training loop, a full disk, and an
exit that cannot hang.

- SIGTERM / SIGINT while importing, parsing gin, loading tasks or compiling raise
  `Stopped` (not an Exception, so library code that catches Exception cannot swallow it);
  the CLI prints one line and exits 128 + the signal number. Inside the training loop the
  trainer turns the same signals into a save-and-stop flag, and gives these handlers back
  when it leaves. A second signal ends the process at once.
- A full disk shows up as an OSError (ENOSPC) or, from tensorstore / orbax, as a ValueError
  whose text says "No space left on device"; background save threads log it again and
  again. `disk_full_path` recognises both and `quiet_disk_full_logs` keeps the copies off
  the console, so the CLI's one line is what the user reads.
- After an error, tf.data, orbax and tensorstore threads (or their finalizers) can keep the
  interpreter from finishing its shutdown. `hard_exit` runs the atexit handlers (bounded
  by a timer), flushes what was written and leaves with os._exit. It is safe there: every
  file xlt writes is closed (trainer and writers close in `finally`) and checkpoints are
  committed by rename, so nothing depends on the interpreter's own clean-up.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Iterator

_NO_SPACE = "No space left on device"
_PATH_IN_MESSAGE = (r'Failed writing: "([^"]+)"', r'local file "([^"]+)"', r"'(/[^']+)'",
                    r'"(/[^"]+)"')


class Stopped(BaseException):
  """SIGTERM or SIGINT received outside the training loop."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signal_name = signal.Signals(signum).name
    self.exit_code = 128 + signum


_received: list[int] = []
_reported: list[int] = []
# A signal that arrives while Python runs a garbage-collection callback or a finalizer
# (jax registers one) raises there, and Python only prints such an exception and goes on.
# So a moment later a thread checks that the stop reached the CLI, and ends it otherwise.
_REPORT_WITHIN_SECONDS = 2.0


def _raise_stopped(signum, frame) -> None:
  del frame
  if _received:  # a second Ctrl-C / TERM while unwinding the first: leave now
    hard_exit(128 + signum)
  _received.append(signum)
  threading.Thread(target=_ensure_stopped, args=(signum,), daemon=True).start()
  raise Stopped(signum)


def _ensure_stopped(signum: int) -> None:
  time.sleep(_REPORT_WITHIN_SECONDS)
  if _reported:
    return
  if signal.getsignal(signum) is _raise_stopped:
    print(f"xlt: stopped by {signal.Signals(signum).name}", file=sys.stderr)
    hard_exit(128 + signum, run_atexit=False)  # the main thread is still running
  else:  # the training loop has started and turns the signal into save-and-stop
    os.kill(os.getpid(), signum)


def stop_reported() -> None:
  """The CLI has reported the stop: the process is on its way out."""
  _reported.append(1)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
  """SIGTERM/SIGINT raise `Stopped` in the main thread while the block runs. A signal that
  was ignored when the process started (a job started in the background) stays ignored."""
  previous = {}
  _received.clear()
  _reported.clear()
  _log_filter.disk_full = False
  for sig in (signal.SIGTERM, signal.SIGINT):
    try:
      if signal.getsignal(sig) is signal.SIG_IGN:
        continue
      previous[sig] = signal.signal(sig, _raise_stopped)
    except ValueError:  # not the main thread
      pass
  default_unraisable = sys.unraisablehook

  def unraisable(info) -> None:  # a stop raised inside a finalizer: _ensure_stopped ends it
    if not isinstance(info.exc_value, Stopped):
      default_unraisable(info)

  sys.unraisablehook = unraisable
  try:
    yield
  finally:
    sys.unraisablehook = default_unraisable
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def stop_received() -> bool:
  return bool(_received)


def _causes(error: BaseException) -> Iterator[BaseException]:
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def disk_full_path(error: BaseException) -> str | None:
  """The file being written when the disk filled up ('' when unknown); None if `error`
  (or an exception it was raised from) is not a full disk."""
  for cause in _causes(error):
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
      return os.fsdecode(cause.filename) if cause.filename else ""
    text = str(cause)
    if _NO_SPACE in text or "os_error_code='28'" in text:
      for pattern in _PATH_IN_MESSAGE:
        found = re.search(pattern, text)
        if found:
          return found.group(1)
      return ""
  return None


class _QuietAfterStopOrDiskFull(logging.Filter):
  """Drops log records about a full disk (the CLI reports it once), the errors logged by
  background threads once a disk was found full, and every record once a stop signal
  arrived (e.g. SeqIO's "Failed to load task" while unwinding a Ctrl-C)."""

  def __init__(self):
    super().__init__()
    self.disk_full = False

  def filter(self, record: logging.LogRecord) -> bool:
    if _received:
      return False
    error = record.exc_info[1] if record.exc_info else None
    if _NO_SPACE in record.getMessage() or (error and disk_full_path(error) is not None):
      self.disk_full = True
      return False
    return not (self.disk_full and record.levelno >= logging.ERROR)


_log_filter = _QuietAfterStopOrDiskFull()


def quiet_disk_full_logs() -> None:
  """Installs the filter on the root handlers, and exception hooks that leave a full disk
  (and what follows it in orbax's threads: tensorstore callbacks into a closed event loop,
  printed through sys.excepthook) to the CLI. Calling it again adds nothing."""
  for handler in logging.getLogger().handlers:
    if _log_filter not in handler.filters:
      handler.addFilter(_log_filter)
  if getattr(threading.excepthook, "_xlt_quiet", False):
    return

  def quiet(error: BaseException | None) -> bool:
    return bool(_received or _log_filter.disk_full or
                (error is not None and disk_full_path(error) is not None))

  default_thread_hook, default_hook = threading.excepthook, sys.excepthook

  def thread_hook(args) -> None:
    if not quiet(args.exc_value):
      default_thread_hook(args)

  def hook(kind, error, tb) -> None:
    if not quiet(error):
      default_hook(kind, error, tb)

  thread_hook._xlt_quiet = True
  threading.excepthook, sys.excepthook = thread_hook, hook


class _MutedWhileDiskFull:
  """stderr that drops what is written between a full disk being seen and the CLI's line
  about it, and the "RuntimeError: Event loop is closed" tracebacks that tensorstore
  callbacks print from C (past every Python hook) when orbax's save failed and closed its
  loop: those can come before the failure is logged."""

  _HEADER = "Traceback (most recent call last):"
  _NOISE = "RuntimeError: Event loop is closed"

  def __init__(self, stream):
    self._stream = stream
    self._blocks: dict[int, str] = {}  # per thread: tensorstore's threads print at once
    self.reported = False

  def write(self, text: str) -> int:
    if _log_filter.disk_full and not self.reported:
      return len(text)
    thread = threading.get_ident()
    block = self._blocks.pop(thread, "")
    if not block and not text.lstrip().startswith(self._HEADER):
      return self._stream.write(text)
    block += text
    lines = block.split("\n")
    for i, line in enumerate(lines[1:-1], start=1):  # complete lines after the header
      if line and not line[0].isspace() and not line.startswith(self._HEADER):
        if line.strip() != self._NOISE:
          self._stream.write("\n".join(lines[:i + 1]) + "\n")
        rest = "\n".join(lines[i + 1:])
        if rest:
          self.write(rest)
        return len(text)
    self._blocks[thread] = block
    return len(text)

  def flush(self) -> None:
    for thread in list(self._blocks):
      self._stream.write(self._blocks.pop(thread, ""))
    self._stream.flush()

  def __getattr__(self, name):
    return getattr(self._stream, name)


def mute_stderr_while_disk_full() -> None:
  """For the process entry point only (tests capture stderr themselves)."""
  if not isinstance(sys.stderr, _MutedWhileDiskFull):
    sys.stderr = _MutedWhileDiskFull(sys.stderr)


def disk_full_reported() -> None:
  """Lets the CLI's one line through the muted stderr."""
  if isinstance(sys.stderr, _MutedWhileDiskFull):
    sys.stderr.reported = True


def hard_exit(code: int, grace_seconds: float = 10.0, run_atexit: bool = True) -> None:
  """Runs the atexit handlers (e.g. releasing a MODEL_DIR lease on a bucket) for at most
  `grace_seconds`, flushes the console and log handlers, then ends the process even if
  threads or finalizers would block the interpreter's shutdown."""
  watchdog = threading.Timer(grace_seconds, os._exit, args=(code,))
  watchdog.daemon = True
  watchdog.start()
  sys.unraisablehook = lambda unraisable: None  # e.g. a writer's flush onto the full disk
  if run_atexit:
    with contextlib.suppress(BaseException):
      atexit._run_exitfuncs()  # noqa: SLF001 - the interpreter's own list, run once here
  for handler in logging.getLogger().handlers:
    with contextlib.suppress(Exception):
      handler.flush()
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):
      stream.flush()
  os._exit(code)
