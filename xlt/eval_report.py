"""`xlt report RUN_A RUN_B ...`: evaluations side by side, per cluster and dataset, with
each run's difference to the first in points, as a table and a grouped bar chart.

A run is a results.json, an eval folder, or a run directory with one evaluation. The
first run is the reference (e.g. the untuned baseline); datasets one run lacks show "-".
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
from typing import Any, Sequence

from xlt import eval_results, run_paths

STATISTICS = ("mean", "median")


def compare(runs: Sequence[dict[str, Any]], statistic: str = "mean"
            ) -> list[tuple[str, str, str, list[float | None]]]:
  """Rows (cluster, dataset, metric, value per run); dataset "" is the cluster average
  (mean over the datasets every run has, so the runs are compared on the same ones)."""
  keys: dict[tuple[str, str], str] = {}
  for run in runs:
    for cluster, entry in run["clusters"].items():
      for dataset, d in entry["datasets"].items():
        keys.setdefault((cluster, dataset), d["metric"])

  def value(run, cluster, dataset):
    d = run["clusters"].get(cluster, {}).get("datasets", {}).get(dataset)
    return None if d is None else d[statistic]

  rows = []
  for cluster in sorted({c for c, _ in keys}):
    datasets = sorted(d for c, d in keys if c == cluster)
    shared = [d for d in datasets if all(value(r, cluster, d) is not None for r in runs)]
    averages = [statistics.fmean(value(r, cluster, d) for d in shared) if shared else None
                for r in runs]
    rows.append((cluster, "", "", averages))
    for dataset in datasets:
      rows.append((cluster, dataset, keys[(cluster, dataset)],
                   [value(r, cluster, dataset) for r in runs]))
  return rows


def markdown(names: Sequence[str], rows, statistic: str) -> str:
  header = ["cluster", "dataset", "metric", names[0]] + [f"{n} (Δ)" for n in names[1:]]
  lines = [f"# Comparison ({statistic} over templates, points; Δ against {names[0]})", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for cluster, dataset, metric, values in rows:
    cells = [f"**{cluster}**" if not dataset else "", dataset, metric]
    base = values[0]
    cells.append("-" if base is None else f"{base:.2f}")
    for v in values[1:]:
      if v is None:
        cells.append("-")
      else:
        delta = "" if base is None else f" ({v - base:+.2f})"
        cells.append(f"{v:.2f}{delta}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def chart_png(names: Sequence[str], rows, statistic: str) -> bytes:
  """Grouped bars: one group per cluster, one bar per run (the cluster average)."""
  from matplotlib.figure import Figure
  clusters = [(c, values) for c, dataset, _, values in rows if not dataset]
  fig = Figure(figsize=(max(5.0, 1.2 * len(clusters) * max(len(names), 2) / 2 + 2), 4.5),
               layout="constrained")
  ax = fig.subplots()
  width = 0.8 / len(names)
  for i, name in enumerate(names):
    xs = [c + (i - (len(names) - 1) / 2) * width for c in range(len(clusters))]
    ys = [values[i] if values[i] is not None else 0.0 for _, values in clusters]
    ax.bar(xs, ys, width=width, label=name)
  ax.set_xticks(range(len(clusters)), [c for c, _ in clusters], rotation=30, ha="right")
  ax.set_ylabel(f"{statistic} over templates (points)")
  ax.legend(fontsize=8)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  return buffer.getvalue()


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog="xlt report", description=(
      "Compare evaluations (results.json of `xlt eval`) per cluster and dataset; the "
      "first run is the reference for the differences."))
  parser.add_argument("runs", nargs="+", help="run directories, eval folders or results.json")
  parser.add_argument("--names", default=None,
                      help="comma-separated column names (default: the paths)")
  parser.add_argument("--statistic", choices=STATISTICS, default="mean",
                      help="over each dataset's templates (default mean)")
  parser.add_argument("--out", default=None,
                      help="folder for report.md and report.png (default: print only)")
  args = parser.parse_args(argv)
  names = args.names.split(",") if args.names else list(args.runs)
  if len(names) != len(args.runs):
    print(f"error: --names has {len(names)} names for {len(args.runs)} runs", file=sys.stderr)
    return 2
  runs = [eval_results.load(r) for r in args.runs]
  rows = compare(runs, args.statistic)
  text = markdown(names, rows, args.statistic)
  print(text)
  if args.out:
    folder = run_paths.resolve(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(text)
    (folder / "report.png").write_bytes(chart_png(names, rows, args.statistic))
    print(f"report written to {args.out}", file=sys.stderr)
  return 0
