"""The files of one evaluation: results.json, results.md (per cluster, the T0/KORANI way)
and results.png.

Every task is one (dataset, template) cell. A dataset's score is the mean and the median
of its templates' primary metric; a cluster's is the mean over its datasets. Over the
whole mixture `summary` holds the macro average (mean over tasks: KMMLU's average over
subjects) and the micro average (weighted by examples) of each primary metric.
"""
from __future__ import annotations

import datetime
import io
import json
import statistics
from collections import defaultdict
from typing import Any, Mapping

from xlt import run_paths

# The metric a task is reported by: the first of these it has.
PRIMARY_METRICS = ("accuracy", "rouge_l", "squad_f1", "bleu", "exact_match", "token_accuracy")
RESULTS_FILE = "results.json"


class ResultsNotFoundError(FileNotFoundError):
  """No results.json where a run's evaluation was expected."""


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
          tasks: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, str]) -> dict[str, Any]:
  return {"checkpoint": checkpoint, "step": step, "mixture": mixture, "split": split,
          "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "tasks": dict(tasks), "skipped": dict(skipped), **summarize(tasks)}


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
  found = sorted((p / "eval").glob(f"*/{RESULTS_FILE}")) if (p / "eval").exists() else []
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
           f"{len(results['tasks'])} tasks, {len(results['skipped'])} skipped", "",
           "## Summary", ""]
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
