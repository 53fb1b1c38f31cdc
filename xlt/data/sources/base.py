"""The contract every data source keeps.

A source knows its splits without touching the disk; `rows(split, stats)` opens files
only when called, yields one dict of fields per kept row, and counts every row read,
kept or skipped (by reason) in `stats`, so a long run never dies on one bad row and
the user can see what was dropped. A row that cannot even be read (bytes that are not
UTF-8, a line that does not parse) is skipped with its file and line, logged as a warning
(the first few per file, then only counted). A missing file raises MissingDataError
naming the dataset, the path that was expected and how to obtain it; a file that holds no
data row at all (empty, header only) raises DataFileError naming the file.
"""
from __future__ import annotations

import abc
import collections
import dataclasses
import logging
from typing import Iterator

SPLITS = ("train", "validation", "test")
LOGGED_ROWS_PER_FILE = 3  # unreadable rows warned about one by one; later ones only counted

_log = logging.getLogger("xlt.data")


class MissingDataError(FileNotFoundError):
  """A dataset's files are not where they should be."""

  def __init__(self, dataset: str, expected: str, how_to_get: str):
    self.dataset, self.expected, self.how_to_get = dataset, expected, how_to_get
    super().__init__(f"dataset {dataset!r}: expected {expected}, not found. {how_to_get}")


class DataFileError(ValueError):
  """A data file that cannot give a single row: empty, header only, unreadable header."""

  def __init__(self, path, problem: str):
    self.path, self.problem = str(path), problem
    super().__init__(f"{path}: {problem}")


@dataclasses.dataclass(frozen=True)
class Location:
  """Where a raw row sits: a line of a text file, or an item of a JSON list."""

  path: str
  line: int
  unit: str = "line"

  def __str__(self) -> str:
    if self.unit == "line":
      return f"{self.path}:{self.line}"
    return f"{self.path} ({self.unit} {self.line})"


# Per process, so that a file re-read by many tasks (templates) or epochs warns once.
_warned: dict[str, set[int]] = collections.defaultdict(set)


def _warn_unreadable(where: Location, reason: str) -> None:
  seen = _warned[where.path]
  if where.line in seen or len(seen) > LOGGED_ROWS_PER_FILE:
    return
  seen.add(where.line)
  if len(seen) <= LOGGED_ROWS_PER_FILE:
    _log.warning("skipped the row at %s: %s", where, reason)
  else:
    _log.warning("%s: more unreadable rows; they are skipped and counted, not logged "
                 "(`xlt tasks check` prints the counts)", where.path)


@dataclasses.dataclass
class RowStats:
  """Rows read / kept / skipped by reason, for one (dataset, split); for rows that could
  not be read, where the first few were."""

  name: str = ""
  read: int = 0
  kept: int = 0
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  where: dict[str, list[Location]] = dataclasses.field(default_factory=dict)

  def skip(self, reason: str, where: Location | None = None) -> None:
    self.skipped[reason] += 1
    if where is None:
      return
    _warn_unreadable(where, reason)
    first = self.where.setdefault(reason, [])
    if len(first) < LOGGED_ROWS_PER_FILE:
      first.append(where)

  def summary(self) -> str:
    parts = [f"read {self.read}", f"kept {self.kept}"]
    if self.skipped:
      reasons = ", ".join(self._reason(r, n) for r, n in self.skipped.most_common())
      parts.append(f"skipped {sum(self.skipped.values())} ({reasons})")
    return f"{self.name}: " + ", ".join(parts)

  def _reason(self, reason: str, count: int) -> str:
    first = self.where.get(reason)
    if not first:
      return f"{count} {reason}"
    more = ", ..." if count > len(first) else ""
    return f"{count} {reason} at {', '.join(map(str, first))}{more}"

  def log(self) -> None:
    _log.log(logging.WARNING if self.where else logging.INFO, self.summary())


class Source(abc.ABC):
  """Raw rows of one dataset; `fields` documents the keys each row has."""

  dataset: str          # catalogue key
  splits: tuple[str, ...]
  fields: tuple[str, ...] = ()
  # Rows come from local files of modest size: `xlt tasks check / show` read whole splits
  # to count rows read / kept / skipped (not P3's Hugging Face sets: millions of rows).
  reads_local_files: bool = False

  @abc.abstractmethod
  def rows(self, split: str, stats: RowStats) -> Iterator[dict]:
    """Yield the kept rows of `split`; count read/kept/skipped in `stats`."""

  def check_split(self, split: str) -> None:
    if split not in self.splits:
      raise ValueError(f"dataset {self.dataset!r} has no split {split!r} "
                       f"(it has {', '.join(self.splits)})")


def drop(stats: RowStats, reason: str) -> None:
  """A row the source kept but a later stage (template rendering) rejected."""
  stats.kept -= 1
  stats.skip(reason)
