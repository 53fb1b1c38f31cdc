"""Bad data files (issue 15, items 8 and 9): a byte that is not UTF-8 costs its row, not the
dataset, and is reported with file and line; a file without data rows stops training and
fails `xlt tasks check`, naming the task and the file.

The files are real rows from ../shared/data (KorNLI, KLUE-NLI, BEEP!) copied into a tmp
folder and broken there, and one KORANI CSV written in the release's format.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import seqio

from conftest import REPO_ROOT, subprocess_env
from tasks import template_store
from xlt import cli
from xlt.data import template_tasks
from xlt.data.sources import korani
from xlt.data.sources.base import DataFileError, RowStats
from xlt.data.sources.korean import korean_sources

KORNLI = "kornli/xnli.dev.ko.tsv"
BAD_LINE = 5  # 1-based, the header is line 1


def _lines(path: pathlib.Path) -> list[bytes]:
  return path.read_bytes().split(b"\n")


def _break_lines(src: pathlib.Path, dst: pathlib.Path, line_numbers) -> None:
  """A copy of `src` with one 0xff byte inside the first sentence of each given line."""
  lines = _lines(src)
  for number in line_numbers:
    line = lines[number - 1]
    lines[number - 1] = line[:6] + b"\xff" + line[6:]
  dst.parent.mkdir(parents=True, exist_ok=True)
  dst.write_bytes(b"\n".join(lines))


def _data_rows(path: pathlib.Path) -> int:
  return sum(1 for line in _lines(path)[1:] if line.strip())


def _read(source, split):
  stats = RowStats(f"{source.dataset}/{split}")
  return list(source.rows(split, stats)), stats


@pytest.fixture
def bad_kornli(shared_data, tmp_path):
  _break_lines(shared_data / KORNLI, tmp_path / KORNLI, [BAD_LINE])
  return tmp_path


def _run_cli(*args, data_root, timeout=300):
  return subprocess.run([sys.executable, "-m", "xlt", *args], cwd=REPO_ROOT,
                        env=subprocess_env(XLT_KO_DATA_DIR=str(data_root)),
                        capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------- item 8: invalid UTF-8


def test_invalid_byte_skips_its_row_and_warns_with_file_and_line(bad_kornli, shared_data,
                                                                 caplog):
  good, _ = _read(korean_sources(shared_data)["kornli"], "validation")
  with caplog.at_level(logging.WARNING, logger="xlt.data"):
    rows, stats = _read(korean_sources(bad_kornli)["kornli"], "validation")
  n = _data_rows(shared_data / KORNLI)
  assert (stats.read, stats.kept, dict(stats.skipped)) == (n, n - 1, {"invalid UTF-8": 1})
  # Every other row is kept, unchanged and in order; only the broken one is missing.
  assert rows == good[:BAD_LINE - 2] + good[BAD_LINE - 1:]
  where = f"{bad_kornli / KORNLI}:{BAD_LINE}"
  assert where in stats.summary()
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any(where in w and "invalid UTF-8" in w for w in warnings), warnings


def test_many_bad_rows_are_all_counted_but_only_the_first_few_logged(shared_data, tmp_path,
                                                                     caplog):
  bad = list(range(2, 42))  # 40 broken rows
  _break_lines(shared_data / KORNLI, tmp_path / KORNLI, bad)
  with caplog.at_level(logging.WARNING, logger="xlt.data"):
    rows, stats = _read(korean_sources(tmp_path)["kornli"], "validation")
  assert stats.skipped == {"invalid UTF-8": 40} and stats.kept == stats.read - 40
  path = str(tmp_path / KORNLI)
  warnings = [r.getMessage() for r in caplog.records if path in r.getMessage()]
  assert 2 <= len(warnings) <= 5, warnings   # the first few and a "more" line, not 40
  assert f"{path}:2" in warnings[0]


def test_invalid_byte_in_a_json_list_skips_that_item(shared_data, tmp_path):
  name = "klue/klue-nli-v1.1_dev.json"
  raw = (shared_data / name).read_bytes()
  items = json.loads(raw)
  first_premise = items[0]["premise"].encode("utf-8")
  broken = raw.replace(first_premise, first_premise[:3] + b"\xff" + first_premise[3:], 1)
  (tmp_path / "klue").mkdir()
  (tmp_path / name).write_bytes(broken)
  rows, stats = _read(korean_sources(tmp_path)["klue_nli"], "validation")
  assert stats.read == len(items) and stats.skipped == {"invalid UTF-8": 1}
  assert f"{tmp_path / name} (item 1)" in stats.summary()
  assert rows[0]["premise"] == items[1]["premise"]


def test_invalid_byte_in_a_korani_csv_skips_that_row(tmp_path):
  folder = tmp_path / "nli" / "kornli"
  folder.mkdir(parents=True)
  with open(folder / "dev.csv", "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(korani.COLUMNS)
    for i in range(3):
      writer.writerow([f"전제 {i}\n가설 {i}", "함의", "함의|||중립|||모순", "kornli", str(i)])
  data = (folder / "dev.csv").read_bytes().replace("전제 1".encode(), b"\xff 1")
  (folder / "dev.csv").write_bytes(data)
  source = korani.KoraniSource("kornli", "nli/kornli", root=tmp_path)
  rows, stats = _read(source, "validation")
  assert [r["id"] for r in rows] == ["0", "2"] and stats.skipped == {"invalid UTF-8": 1}
  assert f"{folder / 'dev.csv'}:4" in stats.summary()  # row 1 starts on line 4 (2 lines each)


def test_tasks_check_and_show_print_the_counts(bad_kornli, shared_data, monkeypatch,
                                               capsys):
  n = _data_rows(shared_data / KORNLI)
  where = f"{bad_kornli / KORNLI}:{BAD_LINE}"
  counts = f"read {n}, kept {n - 1}, skipped 1 (1 invalid UTF-8 at {where})"
  monkeypatch.setenv("XLT_KO_DATA_DIR", str(bad_kornli))
  assert cli.main(["tasks", "show", "ko_kornli__fields_first", "--n", "1"]) == 0
  assert f"# rows: kornli/validation: {counts}" in capsys.readouterr().out

  check = _run_cli("tasks", "check", "ko_kornli", data_root=bad_kornli)
  assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
  assert "FAIL" not in check.stdout and " 0 fail" in check.stdout.splitlines()[0]
  assert f"rows    kornli/validation: {counts}" in check.stdout
  assert where in check.stderr  # the warning, in the log


# ------------------------------------------------------- item 9: no data rows at all


@pytest.mark.parametrize("content, problem", [(b"", "empty file"),
                                              (None, "no data rows (header only)")])
def test_a_file_without_data_rows_fails_naming_the_task_and_file(shared_data, tmp_path,
                                                                 content, problem):
  header = _lines(shared_data / KORNLI)[0] + b"\n"
  (tmp_path / "kornli").mkdir()
  (tmp_path / KORNLI).write_bytes(header if content is None else content)
  with pytest.raises(DataFileError, match=re.escape(problem)) as info:
    _read(korean_sources(tmp_path)["kornli"], "validation")
  assert info.value.path == str(tmp_path / KORNLI)
  source = korean_sources(tmp_path)["kornli"]
  template = template_store.templates("kornli", language="ko", style="korani")[0]
  name = "test_faults_kornli__empty"
  template_tasks.register(name, source, template, cluster="nli", language="ko",
                          purpose="eval")
  try:
    with pytest.raises(template_tasks.EmptyTaskError) as info:
      next(template_tasks.RENDERERS[name]("validation"))
    assert f"task {name!r}" in str(info.value) and str(tmp_path / KORNLI) in str(info.value)
  finally:
    for task in (name, name + template_tasks.SCORE_EVAL_SUFFIX):
      if task in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(task)
      for registry in (template_tasks.TASKS, template_tasks.RENDERERS, template_tasks.SOURCES):
        registry.pop(task, None)


def test_header_only_korani_csv_fails(tmp_path):
  folder = tmp_path / "nli" / "kornli"
  folder.mkdir(parents=True)
  (folder / "dev.csv").write_text(",".join(korani.COLUMNS) + "\n", encoding="utf-8")
  source = korani.KoraniSource("kornli", "nli/kornli", root=tmp_path)
  with pytest.raises(DataFileError, match="no data rows"):
    _read(source, "validation")


def test_tasks_check_names_the_header_only_file(shared_data, tmp_path):
  (tmp_path / "kornli").mkdir()
  (tmp_path / KORNLI).write_bytes(_lines(shared_data / KORNLI)[0] + b"\n")
  check = _run_cli("tasks", "check", "ko_kornli", data_root=tmp_path)
  assert check.returncode == 1, check.stdout[-2000:] + check.stderr[-2000:]
  fails = [line for line in check.stdout.splitlines() if line.startswith("  FAIL")]
  assert fails and all(f"{tmp_path / KORNLI}: no data rows (header only)" in line
                       for line in fails), fails
  assert all("(validation)" in line and "ko_kornli__" in line for line in fails)


def _tree_digest(folder: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_on_a_header_only_file_exits_2_naming_task_and_file(shared_data, tmp_path):
  data = tmp_path / "data"
  (data / "beep").mkdir(parents=True)
  train_file = data / "beep" / "train.tsv"
  train_file.write_bytes(_lines(shared_data / "beep" / "train.tsv")[0] + b"\n")
  shutil.copy(shared_data / "beep" / "dev.tsv", data / "beep" / "dev.tsv")
  before = _tree_digest(data)
  model_dir = tmp_path / "run"
  task = "ko_beep__comment_first"
  out = _run_cli("train", "--gin_file=gin/experiments/demo.gin", "--gin_file=gin/local_tiny.gin",
                 "--gin.train.progress_bar=False", f"--gin.MODEL_DIR='{model_dir}'",
                 f"--gin.MIXTURE_OR_TASK_NAME='{task}'", data_root=data)
  assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
  (error,) = _error_lines(out.stderr)
  assert f"task {task!r}, split 'train'" in error
  assert f"{train_file}: no data rows (header only)" in error
  assert "ran out" not in out.stderr
  steps = [p.name for p in (model_dir / "checkpoints").glob("*")] if model_dir.exists() else []
  assert not steps, steps  # no untrained checkpoint
  assert _tree_digest(data) == before
