"""The files of one evaluation: results.json, results.md (per cluster, the T0/KORANI way)
and results.png, and how they reach their folder without replacing or mixing with others.

A folder is written whole or not at all: everything goes into `<folder>.tmp` and is moved
into place when the evaluation is complete (`claim` before any work, `publish` at the end).
A complete result (one with results.json) is only replaced when asked (`overwrite`).

Every task is one (dataset, template) cell. A dataset's score is the mean and the median
of its templates' primary metric; a cluster's is the mean over its datasets. Over the
whole mixture `summary` holds the macro average (mean over tasks: KMMLU's average over
subjects) and the micro average (weighted by examples) of each primary metric.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import statistics
from collections import defaultdict
from typing import Any, Mapping

from etils import epath

from xlt import run_paths

log = logging.getLogger(__name__)
# The metric a task is reported by: the first of these it has.
PRIMARY_METRICS = ("accuracy", "rouge_l", "squad_f1", "bleu", "exact_match", "token_accuracy")
RESULTS_FILE = "results.json"
TMP_SUFFIX = ".tmp"          # <folder>.tmp: the evaluation being written
ASIDE_SUFFIX = ".old.tmp"    # <folder>.old.tmp: a replaced result, for the instant of the swap
# What an evaluation folder holds: anything else in it means it is someone else's folder.
_FOLDER_ENTRIES = {RESULTS_FILE, "results.md", "results.png", "predictions"}


class ResultsNotFoundError(FileNotFoundError):
  """No results.json where a run's evaluation was expected."""


class ResultsExistError(ValueError):
  """The output folder already holds an evaluation (or files that are not one)."""


def settings_hash(settings: Mapping[str, Any]) -> str:
  """Short stable digest of the settings that change the numbers (folder name suffix)."""
  text = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=False)
  return hashlib.sha256(text.encode()).hexdigest()[:8]


def _siblings(folder: epath.Path) -> tuple[epath.Path, epath.Path]:
  return (folder.parent / (folder.name + TMP_SUFFIX),
          folder.parent / (folder.name + ASIDE_SUFFIX))


def _existing_entries(folder: epath.Path) -> set[str]:
  return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def check_replaceable(output_dir: str, *, overwrite: bool) -> None:
  """Raises ResultsExistError unless `output_dir` may receive a new evaluation: it is
  absent or empty, or (with overwrite) holds an evaluation. Touches nothing."""
  folder = run_paths.resolve(output_dir)
  _, aside = _siblings(folder)
  if folder.exists() and not folder.is_dir():
    raise ResultsExistError(f"output folder {output_dir} is a file; choose another with "
                            "--gin.evaluate.output_dir")
  entries = _existing_entries(folder)
  if not entries and aside.is_dir() and (aside / RESULTS_FILE).exists():
    entries = {RESULTS_FILE}  # a swap was cut short: `claim` puts the result back
  if not entries:
    return
  if not entries <= _FOLDER_ENTRIES:
    raise ResultsExistError(
        f"output folder {output_dir} holds files that are not an evaluation "
        f"({', '.join(sorted(entries - _FOLDER_ENTRIES)[:3])}); choose another with "
        "--gin.evaluate.output_dir")
  if overwrite:
    return
  what = ("a complete evaluation" if RESULTS_FILE in entries
          else "an incomplete evaluation (an interrupted copy)")
  raise ResultsExistError(f"{output_dir} already holds {what}; to replace it pass "
                          "--gin.evaluate.overwrite=True")


def claim(output_dir: str, *, overwrite: bool) -> epath.Path:
  """Checks the folder (check_replaceable), makes sure its parent is writable, removes
  what a killed run left (`<folder>.tmp`; `<folder>.old.tmp` goes back in place if the
  swap was cut short) and returns the empty temporary folder to write into."""
  folder = run_paths.resolve(output_dir)
  tmp, aside = _siblings(folder)
  check_replaceable(output_dir, overwrite=overwrite)
  run_paths.ensure_writable(str(folder.parent), what="the evaluation folder",
                            flag="--gin.evaluate.output_dir")
  if aside.is_dir():
    if not _existing_entries(folder) and (aside / RESULTS_FILE).exists():
      if folder.exists():
        folder.rmdir()
      log.warning("putting back %s: the run replacing it was stopped", folder)
      aside.rename(folder)
    else:
      aside.rmtree()
  if tmp.exists():
    log.warning("removing %s left by an evaluation that did not finish", tmp)
    tmp.rmtree()
  tmp.mkdir(parents=True)
  return tmp


def publish(tmp: str | epath.Path, output_dir: str) -> None:
  """Moves the finished `<folder>.tmp` to `<folder>`, replacing what `claim` allowed.

  Locally two renames (the old result is moved aside first; both are atomic). A bucket
  has no folder rename: the old folder is deleted, then each file is copied with
  results.json last, so a folder without results.json is never taken for a result."""
  tmp, folder = run_paths.resolve(tmp), run_paths.resolve(output_dir)
  _, aside = _siblings(folder)
  if not run_paths.is_url(str(folder)):
    if folder.exists():
      folder.rename(aside)
    tmp.rename(folder)
    if aside.exists():
      aside.rmtree()
    return
  if folder.exists():
    folder.rmtree()
  files = sorted((root / name for root, _, names in tmp.walk() for name in names),
                 key=lambda p: p.name == RESULTS_FILE)  # no recursive glob on GCS
  for source in files:
    target = folder / source.relative_to(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    source.copy(target, overwrite=True)
  tmp.rmtree()


def primary_metric(metrics: Mapping[str, Any]) -> str | None:
  return next((m for m in PRIMARY_METRICS if isinstance(metrics.get(m), float)), None)


def summarize(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """{"summary": {metric: {macro, micro, tasks, examples}}, "clusters": {...}}."""
  by_metric: dict[str, list[tuple[float, int]]] = defaultdict(list)
  cells: dict[tuple[str, str, str], list[float]] = defaultdict(list)
  for record in tasks.values():
    metric = record.get("primary_metric")
    if metric is None:
      continue
    value = record["metrics"][metric]
    by_metric[metric].append((value, int(record["metrics"].get("examples", 0))))
    cells[(record["cluster"], record["dataset"], metric)].append(value)
  summary = {}
  for metric, values in by_metric.items():
    examples = sum(n for _, n in values)
    summary[metric] = {
        "macro": statistics.fmean(v for v, _ in values),
        "micro": (sum(v * n for v, n in values) / examples if examples
                  else statistics.fmean(v for v, _ in values)),
        "tasks": len(values), "examples": examples}
  clusters: dict[str, dict[str, Any]] = {}
  for (cluster, dataset, metric), values in sorted(cells.items()):
    entry = clusters.setdefault(cluster, {"datasets": {}})
    entry["datasets"][dataset] = {
        "metric": metric, "templates": len(values), "mean": statistics.fmean(values),
        "median": statistics.median(values), "min": min(values), "max": max(values)}
  for entry in clusters.values():
    datasets = entry["datasets"].values()
    entry["mean"] = statistics.fmean(d["mean"] for d in datasets)
    entry["median"] = statistics.fmean(d["median"] for d in datasets)
  return {"summary": summary, "clusters": clusters}


def build(*, checkpoint: str, step: int, mixture: str, split: str,
          tasks: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, str],
          config: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """config: the settings that change the numbers (decoding, lengths, ...), with the
  `settings_hash` of the folder name, so runs can be told apart."""
  return {"checkpoint": checkpoint, "step": step, "mixture": mixture, "split": split,
          "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "config": dict(config or {}), "tasks": dict(tasks), "skipped": dict(skipped),
          **summarize(tasks)}


def write(output_dir: str, results: Mapping[str, Any], *, chart: bool = True) -> None:
  """results.json (replaced atomically, so a crash leaves the previous one), .md, .png."""
  folder = run_paths.resolve(output_dir)
  folder.mkdir(parents=True, exist_ok=True)
  partial = folder / (RESULTS_FILE + ".tmp")
  partial.write_text(json.dumps(results, indent=2, ensure_ascii=False))
  partial.replace(folder / RESULTS_FILE)
  (folder / "results.md").write_text(markdown(results))
  if chart and results["clusters"]:
    (folder / "results.png").write_bytes(chart_png(results))


def load(path: str) -> dict[str, Any]:
  """results.json from a file, an eval folder, or a run directory (its eval/*/ folders:
  the one there is, else an error listing them)."""
  p = run_paths.resolve(path)
  if p.name == RESULTS_FILE and p.exists():
    return json.loads(p.read_text())
  if (p / RESULTS_FILE).exists():
    return json.loads((p / RESULTS_FILE).read_text())
  found = sorted(f for f in (p / "eval").glob(f"*/{RESULTS_FILE}")
                 if not f.parent.name.endswith(TMP_SUFFIX)) if (p / "eval").exists() else []
  if len(found) == 1:
    return json.loads(found[0].read_text())
  if found:
    listing = "\n  ".join(str(f.parent) for f in found)
    raise ResultsNotFoundError(f"{path} holds {len(found)} evaluations; pass one of:\n  {listing}")
  raise ResultsNotFoundError(f"no {RESULTS_FILE} in {path} or {path}/eval/*/: run `xlt eval` "
                             "on it first")


def _fmt(value: float) -> str:
  return f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
          ["| " + " | ".join(r) + " |" for r in rows])


def markdown(results: Mapping[str, Any]) -> str:
  lines = [f"# Evaluation of `{results['mixture']}` ({results['split']})", "",
           f"checkpoint `{results['checkpoint']}`, step {results['step']}, "
           f"{len(results['tasks'])} tasks, {len(results['skipped'])} skipped", ""]
  if results.get("config"):
    lines += ["settings: " + ", ".join(f"{k} `{v}`" for k, v in results["config"].items()), ""]
  lines += ["## Summary", ""]
  lines += _table(["metric", "macro avg (over tasks)", "micro avg (over examples)", "tasks",
                   "examples"],
                  [[m, _fmt(s["macro"]), _fmt(s["micro"]), str(s["tasks"]), str(s["examples"])]
                   for m, s in results["summary"].items()])
  lines += ["", "## Per cluster (mean and median over each dataset's templates)", ""]
  rows = []
  for cluster, entry in results["clusters"].items():
    rows.append([f"**{cluster}**", "", "", "", _fmt(entry["mean"]), _fmt(entry["median"]), ""])
    for dataset, d in entry["datasets"].items():
      rows.append(["", dataset, d["metric"], str(d["templates"]), _fmt(d["mean"]),
                   _fmt(d["median"]), f"{_fmt(d['min'])}-{_fmt(d['max'])}"])
  lines += _table(["cluster", "dataset", "metric", "templates", "mean", "median", "range"], rows)
  lines += ["", "## Per task", ""]
  rows = []
  for name, record in sorted(results["tasks"].items()):
    m = record["metrics"]
    others = ", ".join(f"{k} {_fmt(v)}" for k, v in m.items()
                       if isinstance(v, float) and k != record.get("primary_metric"))
    metric = record.get("primary_metric")
    rows.append([f"`{name}`", record["evaluator"], str(m.get("examples", "")),
                 f"{metric} {_fmt(m[metric])}" if metric else "", others])
  lines += _table(["task", "evaluator", "examples", "primary", "other metrics"], rows)
  if results["skipped"]:
    lines += ["", "## Skipped", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in sorted(results["skipped"].items())]
  return "\n".join(lines) + "\n"


def chart_png(results: Mapping[str, Any]) -> bytes:
  """Bars: each dataset's mean over templates, grouped and coloured by cluster; dots:
  the single templates."""
  from matplotlib.figure import Figure
  labels, means, dots, colours = [], [], [], []
  palette = [f"C{i}" for i in range(10)]
  for c, (cluster, entry) in enumerate(results["clusters"].items()):
    for dataset, d in entry["datasets"].items():
      labels.append(f"{dataset}\n({cluster})")
      means.append(d["mean"])
      colours.append(palette[c % len(palette)])
      dots.append([r["metrics"][d["metric"]] for r in results["tasks"].values()
                   if r["dataset"] == dataset and r.get("primary_metric") == d["metric"]])
  fig = Figure(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 4.5), layout="constrained")
  ax = fig.subplots()
  xs = range(len(labels))
  ax.bar(xs, means, color=colours, alpha=0.8)
  for x, values in zip(xs, dots):
    ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
  ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=8)
  ax.set_ylabel("primary metric (points)")
  ax.set_title(f"{results['mixture']} ({results['split']}), step {results['step']}")
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  return buffer.getvalue()
