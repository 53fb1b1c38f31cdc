"""KMMLU (Son et al. 2024): 35,030 Korean exam questions in 45 subjects, 4 choices each.

Read from a local copy of the Hugging Face dataset repository HAERAE-HUB/KMMLU, laid out
as upstream: `<root>/kmmlu/data/<Subject>-{train,dev,test}.csv` (or `<root>/data/...` when
root is the downloaded repository itself), root = `root=`, else XLT_KMMLU_DIR, else
XLT_KO_DATA_DIR, read when rows are requested. Columns: question, answer (1-4), A, B, C,
D, Category, Human Accuracy. The dev file holds the subject's 5 few-shot exemplars, so it
is not a split of its own here: every row of `test` / `train` carries the first k dev rows
(file order) as `exemplars`. Rows have the fields

  question, A, B, C, D   the question and its four choices
  answer                 index of the correct choice, 0-3 (upstream 1-4)
  exemplars              k dicts with the same five fields and answer, in dev-file order
"""
from __future__ import annotations

import csv
import os
import pathlib
import re
from typing import Iterator

from xlt.data.sources import korean
from xlt.data.sources import korean_readers as kr
from xlt.data.sources.base import MissingDataError, RowStats, Source

ENV_VAR = "XLT_KMMLU_DIR"
HF_REPO = "HAERAE-HUB/KMMLU"
HF_URL = f"https://huggingface.co/datasets/{HF_REPO}"
LICENCE = "CC BY-ND 4.0"
LETTERS = ("A", "B", "C", "D")
EXEMPLAR_SPLIT = "dev"
DEV_ROWS = 5  # exemplars upstream ships per subject

SUPERCATEGORIES = {"stem": "STEM", "applied_science": "Applied Science", "humss": "HUMSS",
                   "other": "Other"}
# Subject (the Hugging Face config name, also the file-name prefix) -> supercategory, as
# in the KMMLU paper and lm-evaluation-harness's kmmlu groups (kmmlu_stem, ...).
SUBJECTS: dict[str, str] = {
    "Accounting": "humss",
    "Agricultural-Sciences": "other",
    "Aviation-Engineering-and-Maintenance": "applied_science",
    "Biology": "stem",
    "Chemical-Engineering": "stem",
    "Chemistry": "stem",
    "Civil-Engineering": "stem",
    "Computer-Science": "stem",
    "Construction": "other",
    "Criminal-Law": "humss",
    "Ecology": "stem",
    "Economics": "humss",
    "Education": "humss",
    "Electrical-Engineering": "stem",
    "Electronics-Engineering": "applied_science",
    "Energy-Management": "applied_science",
    "Environmental-Science": "applied_science",
    "Fashion": "other",
    "Food-Processing": "other",
    "Gas-Technology-and-Engineering": "applied_science",
    "Geomatics": "applied_science",
    "Health": "other",
    "Industrial-Engineer": "applied_science",
    "Information-Technology": "stem",
    "Interior-Architecture-and-Design": "other",
    "Korean-History": "humss",
    "Law": "humss",
    "Machine-Design-and-Manufacturing": "applied_science",
    "Management": "humss",
    "Maritime-Engineering": "applied_science",
    "Marketing": "other",
    "Materials-Engineering": "stem",
    "Math": "stem",
    "Mechanical-Engineering": "stem",
    "Nondestructive-Testing": "applied_science",
    "Patent": "other",
    "Political-Science-and-Sociology": "humss",
    "Psychology": "humss",
    "Public-Safety": "other",
    "Railway-and-Automotive-Engineering": "applied_science",
    "Real-Estate": "other",
    "Refrigerating-Machinery": "other",
    "Social-Welfare": "humss",
    "Taxation": "humss",
    "Telecommunications-and-Wireless-Technology": "applied_science",
}

HOW_TO_GET = (
    f"Download the dataset repository once ({LICENCE}): `hf download {HF_REPO} "
    "--repo-type dataset --include 'data/*.csv' --local-dir <root>/kmmlu` "
    "(`huggingface-cli download` with the same arguments on huggingface_hub < 1.0), then "
    f"set {ENV_VAR}=<root> (or put it under ${korean.ENV_VAR}). Files: "
    f"<root>/kmmlu/data/<Subject>-{{train,dev,test}}.csv; see {HF_URL}.")


def subject_slug(subject: str) -> str:
  """'Agricultural-Sciences' -> 'agricultural_sciences' (lm-evaluation-harness's names)."""
  return re.sub(r"[^a-z0-9]+", "_", subject.lower()).strip("_")


def _normalized(text: str) -> str:
  return " ".join(text.split())


class KmmluSource(Source):
  """One KMMLU subject; `k_shot` dev rows go with every question as its exemplars."""

  splits = ("test", "train")
  fields = ("question", "A", "B", "C", "D", "answer", "exemplars")

  def __init__(self, subject: str, k_shot: int = DEV_ROWS,
               root: str | os.PathLike | None = None):
    if subject not in SUBJECTS:
      raise ValueError(f"unknown KMMLU subject {subject!r}; the 45 subjects are "
                       f"{', '.join(SUBJECTS)}")
    if not 0 <= k_shot <= DEV_ROWS:
      raise ValueError(f"KMMLU k_shot must be 0-{DEV_ROWS} (the dev rows per subject), "
                       f"got {k_shot}")
    self.subject, self.k_shot = subject, k_shot
    self.dataset = f"kmmlu/{subject}"
    self._root = None if root is None else pathlib.Path(root)

  # ------------------------------------------------------------------------ files

  def data_root(self, split: str) -> pathlib.Path:
    if self._root is not None:
      return self._root
    for var in (ENV_VAR, korean.ENV_VAR):
      value = os.environ.get(var, "").strip()
      if value:
        return pathlib.Path(value).expanduser()
    raise MissingDataError(
        self.dataset, f"${ENV_VAR}/kmmlu/data/{self.subject}-{split}.csv",
        f"Set {ENV_VAR} (or {korean.ENV_VAR}) to the folder that holds kmmlu/ (or pass "
        f"root=). {HOW_TO_GET}")

  def path(self, split: str) -> pathlib.Path:
    """`<Subject>-<split>.csv` under root/kmmlu/data or root/data, ignoring case and -/_.

    Upstream renamed files over time (data/korean_history-train.csv became
    korean-history-train.csv), so an exact name is tried first, then a loose match.
    """
    root = self.data_root(split)
    name = f"{self.subject}-{split}.csv"
    folders = [root / "kmmlu" / "data", root / "data"]
    for folder in folders:
      if (folder / name).is_file():
        return folder / name
    loose = name.lower().replace("_", "-")
    for folder in folders:
      if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
          if candidate.name.lower().replace("_", "-") == loose and candidate.is_file():
            return candidate
    raise MissingDataError(self.dataset, " or ".join(str(f / name) for f in folders),
                           HOW_TO_GET)

  # ------------------------------------------------------------------------- rows

  def rows(self, split: str, stats: RowStats) -> Iterator[dict]:
    self.check_split(split)
    path = self.path(split)  # resolve both files now: a missing one fails before any row
    exemplar_path = self.path(EXEMPLAR_SPLIT) if self.k_shot else None
    exemplars = self.exemplars(exemplar_path) if exemplar_path else []
    return self._rows(path, exemplars, stats)

  def exemplars(self, path: pathlib.Path) -> list[dict]:
    """The first k usable dev rows, in file order; fewer than k is an error."""
    stats = RowStats(f"{self.dataset}/{EXEMPLAR_SPLIT}")
    kept = list(self._read(path, stats))
    if len(kept) < self.k_shot:
      raise ValueError(f"{path}: a {self.k_shot}-shot KMMLU prompt needs {self.k_shot} "
                       f"exemplars, the file has {len(kept)} usable rows "
                       f"({stats.summary()})")
    return kept[:self.k_shot]

  def _rows(self, path: pathlib.Path, exemplars: list[dict],
            stats: RowStats) -> Iterator[dict]:
    seen = {_normalized(ex["question"]) for ex in exemplars}
    for row, where in self._read(path, stats, with_position=True):
      if _normalized(row["question"]) in seen:
        # dev and test are disjoint upstream; a question must never be its own exemplar.
        stats.kept -= 1
        stats.skip(f"{where}: question is one of its own {self.k_shot}-shot exemplars")
        continue
      yield {**row, "exemplars": exemplars}

  def _read(self, path: pathlib.Path, stats: RowStats, with_position: bool = False):
    """Kept rows of one CSV; a bad row is counted under a reason naming file and row."""
    items = kr.read_delimited(path, delimiter=",", quoting=csv.QUOTE_MINIMAL)
    for number, item in enumerate(items, start=1):
      where = f"{path.name} row {number}"
      stats.read += 1
      if isinstance(item, kr.Bad):
        stats.skip(f"{where}: {item.reason}", item.where)
        continue
      try:
        row = self._build(item)
      except kr.RowSkip as e:
        stats.skip(f"{where}: {e.reason}")
        continue
      stats.kept += 1
      yield (row, where) if with_position else row

  @staticmethod
  def _build(raw: dict) -> dict:
    row = {"question": kr.text(raw, "question")}
    for letter in LETTERS:
      value = raw.get(letter)
      if value is None or not str(value).strip():
        raise kr.RowSkip(f"missing choice {letter}")
      row[letter] = str(value).strip()
    value = str(raw.get("answer") or "").strip()
    try:
      answer = float(value)
    except ValueError:
      answer = float("nan")
    if answer not in (1, 2, 3, 4):
      raise kr.RowSkip(f"answer '{value}' is not 1-4")
    row["answer"] = int(answer) - 1
    return row


def kmmlu_sources(k_shot: int = DEV_ROWS,
                  root: str | os.PathLike | None = None) -> dict[str, KmmluSource]:
  """One source per subject, keyed by subject name."""
  return {subject: KmmluSource(subject, k_shot, root) for subject in SUBJECTS}
