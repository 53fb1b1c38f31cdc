"""results.json summaries (per cluster, macro / micro) and `xlt report` tables on
hand-built records, and the files both write."""
import json

import matplotlib.image
import pytest

from xlt import cli, eval_report, eval_results


def _record(dataset, cluster, accuracy, examples, metric="accuracy"):
  return {"dataset": dataset, "cluster": cluster, "template": "t", "evaluator": "x",
          "primary_metric": metric, "metrics": {metric: accuracy, "examples": examples}}


TASKS = {
    "a1": _record("rte", "nli", 50.0, 100),
    "a2": _record("rte", "nli", 60.0, 100),
    "a3": _record("rte", "nli", 90.0, 100),
    "b1": _record("cb", "nli", 40.0, 50),
    "c1": _record("copa", "sentence_completion", 70.0, 10),
    "g1": _record("xsum", "summarization", 20.0, 30, metric="rouge_l"),
}


def test_cluster_mean_median_and_macro_micro():
  out = eval_results.summarize(TASKS)
  rte = out["clusters"]["nli"]["datasets"]["rte"]
  assert (rte["templates"], rte["mean"], rte["median"]) == (3, pytest.approx(200 / 3), 60.0)
  assert (rte["min"], rte["max"]) == (50.0, 90.0)
  # Cluster: mean over its datasets: means (66.67 + 40) / 2, medians (60 + 40) / 2.
  assert out["clusters"]["nli"]["mean"] == pytest.approx((200 / 3 + 40) / 2)
  assert out["clusters"]["nli"]["median"] == pytest.approx(50.0)
  acc = out["summary"]["accuracy"]
  # Macro: mean over the 5 accuracy tasks; micro: weighted by their 360 examples.
  assert acc["macro"] == pytest.approx((50 + 60 + 90 + 40 + 70) / 5)
  assert acc["micro"] == pytest.approx((5000 + 6000 + 9000 + 2000 + 700) / 360)
  assert (acc["tasks"], acc["examples"]) == (5, 360)
  assert out["summary"]["rouge_l"]["macro"] == 20.0


def test_primary_metric_order():
  assert eval_results.primary_metric({"exact_match": 1.0, "rouge_l": 2.0}) == "rouge_l"
  assert eval_results.primary_metric({"accuracy": 1.0, "macro_f1": 2.0}) == "accuracy"
  assert eval_results.primary_metric({"examples": 3}) is None


def _write(folder, tasks, skipped=None):
  results = eval_results.build(checkpoint="/ckpt", step=5, mixture="mix", split="validation",
                               tasks=tasks, skipped=skipped or {})
  eval_results.write(str(folder), results)
  return results


def test_written_files_are_readable(tmp_path):
  _write(tmp_path, TASKS, {"z_task": "MissingDataError: no file"})
  loaded = json.loads((tmp_path / "results.json").read_text())
  assert loaded["step"] == 5 and set(loaded["tasks"]) == set(TASKS)
  text = (tmp_path / "results.md").read_text()
  assert "| **nli** |" in text and "`z_task`: MissingDataError: no file" in text
  assert "66.67" in text  # rte's mean over templates
  image = matplotlib.image.imread(tmp_path / "results.png")
  assert image.ndim == 3 and image.shape[0] > 100
  assert not list(tmp_path.glob("*.tmp"))


def test_load_finds_a_run_s_single_evaluation_and_refuses_ambiguity(tmp_path):
  _write(tmp_path / "run" / "eval" / "mix-validation-step5", TASKS)
  assert eval_results.load(str(tmp_path / "run"))["mixture"] == "mix"
  _write(tmp_path / "run" / "eval" / "other-validation-step5", TASKS)
  with pytest.raises(eval_results.ResultsNotFoundError, match="2 evaluations"):
    eval_results.load(str(tmp_path / "run"))
  with pytest.raises(eval_results.ResultsNotFoundError, match="run `xlt eval`"):
    eval_results.load(str(tmp_path / "nothing"))


def test_report_differences_in_points(tmp_path, capsys):
  base = {k: dict(v, metrics=dict(v["metrics"])) for k, v in TASKS.items()}
  tuned = {k: dict(v, metrics=dict(v["metrics"])) for k, v in TASKS.items()}
  for v in tuned.values():
    v["metrics"][v["primary_metric"]] += 10.0
  del tuned["c1"]  # the tuned run lacks copa
  _write(tmp_path / "a", base)
  _write(tmp_path / "b", tuned)
  rows = eval_report.compare([eval_results.load(str(tmp_path / n)) for n in "ab"])
  by_key = {(c, d): values for c, d, _, values in rows}
  assert by_key[("nli", "rte")] == [pytest.approx(200 / 3), pytest.approx(200 / 3 + 10)]
  assert by_key[("sentence_completion", "copa")] == [70.0, None]
  assert by_key[("sentence_completion", "")] == [None, None]  # no dataset both runs have

  code = cli.main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--names", "base,tuned",
                   "--out", str(tmp_path / "report")])
  assert code == 0
  printed = capsys.readouterr().out
  assert "| **nli** |  |  | 53.33 | 63.33 (+10.00) |" in printed
  assert "| | copa | accuracy | 70.00 | - |" in printed.replace("|  |", "| |")
  assert matplotlib.image.imread(tmp_path / "report" / "report.png").ndim == 3
  assert (tmp_path / "report" / "report.md").read_text() == printed.rstrip("\n") + "\n"


def test_report_names_a_missing_run(tmp_path, capsys):
  assert cli.main(["report", str(tmp_path / "missing")]) == 2
  assert "no results.json" in capsys.readouterr().err


def test_a_folder_is_claimed_written_whole_and_replaced_only_when_asked(tmp_path):
  folder = tmp_path / "eval" / "mix-validation-step5-greedy-0123abcd"
  tmp = eval_results.claim(str(folder), overwrite=False)
  assert tmp.name == folder.name + ".tmp" and not folder.exists()
  _write(tmp, TASKS)
  eval_results.publish(tmp, str(folder))
  assert (folder / "results.json").exists() and not tmp.exists()
  # A run directory lists finished evaluations only, not one being written.
  (tmp_path / "eval" / "other.tmp").mkdir()
  (tmp_path / "eval" / "other.tmp" / "results.json").write_text("{}")
  assert eval_results.load(str(tmp_path))["mixture"] == "mix"
  with pytest.raises(eval_results.ResultsExistError, match="--gin.evaluate.overwrite=True"):
    eval_results.claim(str(folder), overwrite=False)
  # A swap cut short between its two renames: the old result goes back in place.
  folder.rename(folder.parent / (folder.name + ".old.tmp"))
  with pytest.raises(eval_results.ResultsExistError, match="complete evaluation"):
    eval_results.claim(str(folder), overwrite=False)
  eval_results.claim(str(folder), overwrite=True)
  assert (folder / "results.json").exists()


def test_a_folder_that_is_not_an_evaluation_is_never_replaced(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  for overwrite in (False, True):
    with pytest.raises(eval_results.ResultsExistError, match="notes.txt"):
      eval_results.claim(str(tmp_path), overwrite=overwrite)
  assert (tmp_path / "notes.txt").read_text() == "mine"
