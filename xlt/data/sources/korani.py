"""Source 1: the KORANI release, pre-rendered CSVs.

Layout (XLT_KORANI_DIR):
  <cluster>/<dataset>/train.csv, dev.csv, test_tmp1.csv, test_tmp2.csv, ...
Columns: input, output, choices, dataset_name, id. `choices` is "|||"-joined, or empty
when the options are written in the prompt. train/dev mix the dataset's templates;
each test_tmp<k>.csv is the test set rendered with template k.

`scan()` only lists directories (no file is opened); rows are read when requested. A row
with bytes that are not UTF-8 is skipped and counted with its line; a file without data
rows raises DataFileError.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import re
import sys
from typing import Iterator

from xlt.data.sources import korean_readers
from xlt.data.sources.base import DataFileError, Location, MissingDataError, RowStats, Source

ENV_VAR = "XLT_KORANI_DIR"
COLUMNS = ("input", "output", "choices", "dataset_name", "id")
SPLIT_FILES = {"train": "train.csv", "validation": "dev.csv"}
_TEST_RE = re.compile(r"^test_tmp(\d+)\.csv$")
HOW_TO_GET = (f"Download and unzip the KORANI release and set {ENV_VAR} to its root "
              "(<cluster>/<dataset>/train.csv, dev.csv, test_tmp<k>.csv); datasets from "
              "AIHub, NIKL and ETRI are not redistributable: request them from their "
              "owners (see docs/data.md) and place the CSVs in the same layout.")

csv.field_size_limit(sys.maxsize)  # summarization inputs exceed csv's 128 KiB default


def korani_dir(explicit: str | os.PathLike | None = None) -> pathlib.Path | None:
  value = explicit or os.environ.get(ENV_VAR)
  return pathlib.Path(value) if value else None


@dataclasses.dataclass(frozen=True)
class KoraniDataset:
  """One dataset folder of the release, as found by scan()."""

  cluster_dir: str
  dataset_dir: str
  path: pathlib.Path
  test_templates: tuple[int, ...]   # k of every test_tmp<k>.csv
  splits: tuple[str, ...]           # train / validation present


def scan(root: str | os.PathLike) -> list[KoraniDataset]:
  """Every <cluster>/<dataset> folder that holds at least one KORANI CSV."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise MissingDataError("KORANI", f"a folder at {ENV_VAR}={root}", HOW_TO_GET)
  found = []
  for cluster in sorted(p for p in root.iterdir() if p.is_dir()):
    for dataset in sorted(p for p in cluster.iterdir() if p.is_dir()):
      names = {p.name for p in dataset.iterdir() if p.is_file()}
      tests = tuple(sorted(int(m.group(1)) for m in map(_TEST_RE.match, names) if m))
      splits = tuple(s for s, f in SPLIT_FILES.items() if f in names)
      if tests or splits:
        found.append(KoraniDataset(cluster.name, dataset.name, dataset, tests, splits))
  return found


class KoraniSource(Source):
  """Rows of one KORANI dataset: train/validation files, or one test template file."""

  fields = ("inputs", "targets", "answer_choices", "id")
  reads_local_files = True

  def __init__(self, dataset: str, relative_dir: str, test_template: int | None = None,
               root: str | os.PathLike | None = None):
    self.dataset = dataset
    self.relative_dir = relative_dir          # "<cluster>/<dataset>" inside the release
    self.test_template = test_template
    self.root = root
    self.splits = ("test",) if test_template is not None else tuple(SPLIT_FILES)

  def path(self, split: str) -> pathlib.Path:
    root = korani_dir(self.root)
    if root is None:
      raise MissingDataError(self.dataset, f"the KORANI release ({ENV_VAR} is not set)",
                             HOW_TO_GET)
    name = (f"test_tmp{self.test_template}.csv" if self.test_template is not None
            else SPLIT_FILES[split])
    return root / self.relative_dir / name

  def rows(self, split: str, stats: RowStats) -> Iterator[dict]:
    self.check_split(split)
    path = self.path(split)
    if not path.is_file():
      raise MissingDataError(self.dataset, str(path), HOW_TO_GET)
    with korean_readers.open_text(path) as f:
      reader = csv.DictReader(f)
      if reader.fieldnames is None:
        raise DataFileError(path, "empty file (no header, no data rows)")
      if korean_readers.undecodable(reader.fieldnames):
        raise DataFileError(path, "line 1 (the header) is not valid UTF-8; re-download it")
      missing = [c for c in ("input", "output", "choices") if c not in reader.fieldnames]
      if missing:
        raise DataFileError(path, f"missing column(s) {missing}; a KORANI CSV has columns "
                            f"{', '.join(COLUMNS)} (found {reader.fieldnames})")
      data_rows = 0
      while True:
        line = reader.line_num + 1  # where the next row starts; quoted fields span lines
        row = next(reader, None)
        if row is None:
          break
        stats.read += 1
        data_rows += 1
        if korean_readers.undecodable(list(row.values())):
          stats.skip(korean_readers.INVALID_UTF8, Location(str(path), line))
          continue
        if None in row or any(row.get(c) is None for c in ("input", "output", "choices")):
          stats.skip("malformed row (wrong number of columns)", Location(str(path), line))
          continue
        inputs, targets = row["input"].strip(), row["output"].strip()
        if not inputs or not targets:
          stats.skip("empty input or output")
          continue
        choices = [c.strip() for c in row["choices"].split("|||")] if row["choices"].strip() else []
        if choices and targets not in choices:
          stats.skip("output is not one of the choices")
          continue
        stats.kept += 1
        yield {"inputs": inputs, "targets": targets, "answer_choices": choices,
               "id": row.get("id") or f"{path.name}:{line}"}
    if not data_rows:
      raise DataFileError(path, "no data rows (header only)")
