"""File-format readers and field checks shared by the raw Korean sources.

Readers turn one file into a stream of raw items: a dict per row, or a `Bad(reason,
where)` for a line that cannot be parsed or holds bytes that are not UTF-8, so that the
caller counts every row read exactly once and a long file never dies on one broken line.
Bytes that are not UTF-8 are kept as lone surrogates while reading (PEP 383
"surrogateescape"), so one bad byte costs its row, not the file. A file with no data row
(empty, header only) raises DataFileError: training on it would silently learn nothing.
Field helpers raise `RowSkip` with a short reason ("missing field 'premise'", "empty
text", "unknown label 'x'") that becomes the skip reason in RowStats.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
import sys
from typing import Any, Callable, Iterable, Iterator, Mapping

from xlt.data.sources.base import DataFileError, Location, MissingDataError, RowStats

ENCODING = "utf-8-sig"  # eats the BOM that several Korean releases start with
INVALID_UTF8 = "invalid UTF-8"

# Long Korean passages (KorQuAD, KLUE-MRC contexts) exceed csv's default 128 KiB limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclasses.dataclass(frozen=True)
class Bad:
  """A raw item that could not be parsed; counted as read, then skipped."""

  reason: str
  where: Location | None = None


class RowSkip(Exception):
  """Raised by a row builder: the row is dropped and counted under `reason`."""

  def __init__(self, reason: str):
    super().__init__(reason)
    self.reason = reason


def first_existing(root: pathlib.Path, dataset: str, candidates: Iterable[str],
                   how_to_get: str) -> pathlib.Path:
  """The first candidate path under `root` that exists, else MissingDataError naming all."""
  paths = [root / c for c in candidates]
  for path in paths:
    if path.is_file():
      return path
  raise MissingDataError(dataset, " or ".join(str(p) for p in paths), how_to_get)


# ---------------------------------------------------------------------------- readers


def open_text(path: pathlib.Path):
  """The file as text; undecodable bytes become lone surrogates for `undecodable`."""
  return open(path, encoding=ENCODING, errors="surrogateescape", newline="")


def undecodable(value: Any) -> bool:
  """Whether `value` (a string, or strings inside lists / dicts) held non-UTF-8 bytes."""
  if isinstance(value, str):
    try:
      value.encode("utf-8")
    except UnicodeEncodeError:
      return True
    return False
  if isinstance(value, Mapping):
    return any(undecodable(k) or undecodable(v) for k, v in value.items())
  if isinstance(value, list):
    return any(undecodable(v) for v in value)
  return False


def read_delimited(path: pathlib.Path, delimiter: str = "\t",
                   quoting: int = csv.QUOTE_NONE) -> Iterator[dict | Bad]:
  """Rows of a headed TSV/CSV as dicts; a row with the wrong field count or bytes that
  are not UTF-8 is Bad, with its line.

  QUOTE_NONE is the default because KorNLI / KorSTS / NSMC / StyleKQC put bare
  quote characters inside sentences; pass QUOTE_MINIMAL for files written with
  CSV quoting (BEEP!, Question Pair, APEACH). Blank lines are not rows.
  """
  with open_text(path) as f:
    reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if header is None:
      raise DataFileError(path, "empty file (no header, no data rows)")
    if undecodable(header):
      raise DataFileError(path, "line 1 (the header) is not valid UTF-8; re-download the file")
    header = [h.strip() for h in header]
    data_rows = 0
    while True:
      where = Location(str(path), reader.line_num + 1)  # a quoted row may span lines
      try:
        fields = next(reader)
      except StopIteration:
        break
      except csv.Error:
        data_rows += 1
        yield Bad("malformed line", where)
        continue
      if not fields or (len(fields) == 1 and not fields[0].strip()):
        continue
      data_rows += 1
      if undecodable(fields):
        yield Bad(INVALID_UTF8, where)
      elif len(fields) != len(header):
        yield Bad("malformed line", where)
      else:
        yield dict(zip(header, fields))
  if not data_rows:
    raise DataFileError(path, "no data rows (header only)")


def read_json_list(path: pathlib.Path) -> Iterator[dict | Bad]:
  """Items of a JSON file holding one list of objects (KLUE NLI / STS / YNAT)."""
  data, clean = _load_json(path)
  if not isinstance(data, list):
    raise DataFileError(path, f"expected a JSON list of rows, got {type(data).__name__}")
  if not data:
    raise DataFileError(path, "no data rows (an empty JSON list)")
  for number, item in enumerate(data, start=1):
    where = Location(str(path), number, "item")
    if not isinstance(item, dict):
      yield Bad("malformed row", where)
    elif not clean and undecodable(item):
      yield Bad(INVALID_UTF8, where)
    else:
      yield item


def read_jsonl(path: pathlib.Path) -> Iterator[dict | Bad]:
  """One JSON object per line; a line that does not parse is Bad, not fatal."""
  data_rows = 0
  with open_text(path) as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      data_rows += 1
      where = Location(str(path), number)
      if undecodable(line):
        yield Bad(INVALID_UTF8, where)
        continue
      try:
        item = json.loads(line)
      except json.JSONDecodeError:
        yield Bad("malformed line", where)
        continue
      yield item if isinstance(item, dict) else Bad("malformed line", where)
  if not data_rows:
    raise DataFileError(path, "empty file (no data rows)")


def read_squad(path: pathlib.Path) -> Iterator[dict | Bad]:
  """SQuAD-style JSON (data -> paragraphs -> qas) flattened to one dict per question.

  Each dict is the question's own fields plus `title` and `context`. A paragraph
  that is not a dict or has no `qas` list counts as one Bad row.
  """
  data, clean = _load_json(path)
  articles = data.get("data") if isinstance(data, dict) else None
  if not isinstance(articles, list):
    raise DataFileError(path, "expected SQuAD-style JSON with a top-level 'data' list")
  if not articles:
    raise DataFileError(path, "no data rows (an empty 'data' list)")
  number = 0
  for article in articles:
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    if not isinstance(paragraphs, list):
      yield Bad("malformed article")
      continue
    title = article.get("title", "")
    for paragraph in paragraphs:
      qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
      if not isinstance(qas, list):
        yield Bad("malformed paragraph")
        continue
      for qa in qas:
        number += 1
        where = Location(str(path), number, "question")
        if not isinstance(qa, dict):
          yield Bad("malformed row", where)
          continue
        item = dict(qa)
        item["title"] = title
        if "context" in paragraph:
          item["context"] = paragraph["context"]
        yield Bad(INVALID_UTF8, where) if not clean and undecodable(item) else item


def load_json(path: pathlib.Path) -> Any:
  return _load_json(path)[0]


def _load_json(path: pathlib.Path) -> tuple[Any, bool]:
  """(parsed JSON, whether every byte was UTF-8); strings keep undecodable bytes escaped."""
  with open_text(path) as f:
    text = f.read()
  if not text.strip():
    raise DataFileError(path, "empty file (no data rows)")
  try:
    return json.loads(text), not undecodable(text)
  except json.JSONDecodeError as e:
    raise DataFileError(path, f"not valid JSON ({e}); re-download the file") from e


def emit(items: Iterable[Mapping | Bad], build: Callable[[Mapping], dict],
         stats: RowStats) -> Iterator[dict]:
  """Count each raw item as read, keep what `build` returns, skip the rest by reason."""
  for item in items:
    stats.read += 1
    if isinstance(item, Bad):
      stats.skip(item.reason, item.where)
      continue
    try:
      row = build(item)
    except RowSkip as e:
      stats.skip(e.reason)
      continue
    stats.kept += 1
    yield row


# ----------------------------------------------------------------------- field checks


def field(raw: Mapping, name: str) -> Any:
  value = raw.get(name)
  if value is None:
    raise RowSkip(f"missing field '{name}'")
  return value


def text(raw: Mapping, name: str) -> str:
  """A required text field, stripped; empty -> "empty text"."""
  value = field(raw, name)
  if not isinstance(value, str):
    raise RowSkip(f"bad field '{name}'")
  value = value.strip()
  if not value:
    raise RowSkip("empty text")
  return value


def named_label(raw: Mapping, name: str, names: Mapping[str, int]) -> int:
  """A label given as a name (e.g. 'entailment') mapped to its index."""
  value = str(field(raw, name)).strip()
  if value not in names:
    raise RowSkip(f"unknown label '{value}'")
  return names[value]


def index_label(raw: Mapping, name: str, n: int,
                names: Mapping[str, int] | None = None) -> int:
  """A label in range(n), given as an int, a digit string, or one of `names`."""
  value = field(raw, name)
  if isinstance(value, bool):
    value = int(value)
  if isinstance(value, str):
    value = value.strip()
    if names and value in names:
      return names[value]
    if value.lstrip("-").isdigit():
      value = int(value)
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if not isinstance(value, int) or not 0 <= value < n:
    raise RowSkip(f"unknown label '{value}'")
  return value


def score(raw: Mapping, name: str, low: float = 0.0, high: float = 5.0) -> float:
  """A similarity score in [low, high]."""
  value = field(raw, name)
  try:
    number = float(value.strip() if isinstance(value, str) else value)
  except (TypeError, ValueError):
    raise RowSkip(f"bad score '{value}'") from None
  if not low <= number <= high:  # also rejects nan
    raise RowSkip(f"bad score '{value}'")
  return number
