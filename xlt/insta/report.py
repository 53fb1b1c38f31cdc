"""`xlt select report`: what the selector picks for every T0 held-out target.

For each target: the top k datasets of the pool with their clusters under the base
encoder, and, given an aligned encoder, its top k and how they differ (datasets that
enter / leave the top k, the overlap, and the Spearman correlation of the two full
rankings). Written as a markdown table; docs/insta.md holds one for p3_train.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from xlt.insta import selection as selection_lib


def heldout_targets() -> list[str]:
  """T0's held-out English datasets (catalogue meta-dataset p3_heldout)."""
  from xlt.data import catalogue
  return [info.key for info in catalogue.select(meta_dataset="p3_heldout")]


@dataclasses.dataclass(frozen=True)
class TargetReport:
  target: str
  cluster: str | None
  base: selection_lib.Selection
  aligned: selection_lib.Selection | None = None

  def changes(self) -> tuple[list[str], list[str], float | None]:
    """(entered the top k, left it, Spearman rho of the full rankings) with alignment."""
    if self.aligned is None:
      return [], [], None
    base = [r.dataset for r in self.base.selected]
    aligned = [r.dataset for r in self.aligned.selected]
    entered = [d for d in aligned if d not in base]
    left = [d for d in base if d not in aligned]
    return entered, left, spearman([r.dataset for r in self.base.ranking],
                                   [r.dataset for r in self.aligned.ranking])


def spearman(order_a: list[str], order_b: list[str]) -> float:
  """Spearman's rho between two rankings of the same items (no ties)."""
  if sorted(order_a) != sorted(order_b):
    raise ValueError("the two rankings rank different datasets")
  n = len(order_a)
  if n < 2:
    return 1.0
  position_b = {d: i for i, d in enumerate(order_b)}
  d = np.array([i - position_b[item] for i, item in enumerate(order_a)], np.float64)
  return float(1.0 - 6.0 * np.sum(d * d) / (n * (n * n - 1)))


def build(pool: str, targets: list[str], base_encoder, aligned_encoder=None,
          aligned_spec: str | None = None, k: int = selection_lib.DEFAULT_K,
          aggregate: str = "vote", cache_dir="default") -> list[TargetReport]:
  reports = []
  for spec in targets:
    target = selection_lib.resolve_target(spec)
    candidates = selection_lib.resolve_pool(pool, exclude=target.dataset)
    base = selection_lib.select(target, candidates, base_encoder, k, aggregate,
                                cache_dir=cache_dir)
    aligned = None
    if aligned_encoder is not None:
      aligned = selection_lib.select(target, candidates, aligned_encoder, k, aggregate,
                                     encoder_spec=aligned_spec, cache_dir=cache_dir)
    reports.append(TargetReport(spec, target.cluster, base, aligned))
  return reports


def _picks(selection: selection_lib.Selection) -> str:
  return ", ".join(f"{r.dataset} ({r.cluster})" for r in selection.selected)


def markdown(reports: list[TargetReport], pool: str) -> str:
  first = reports[0].base if reports else None
  lines = [f"INSTA selections from `{pool}`, top {first.k if first else '?'} by "
           f"`{first.aggregate if first else '?'}`, encoder {first.encoder if first else '?'}"
           + (f"; aligned: {reports[0].aligned.encoder}" if reports and reports[0].aligned
              else "") + ".", ""]
  aligned = any(r.aligned is not None for r in reports)
  header = "| target | cluster | selected (base encoder) |"
  rule = "|---|---|---|"
  if aligned:
    header += " selected (aligned) | entered / left | Spearman |"
    rule += "---|---|---|"
  lines += [header, rule]
  for report in reports:
    row = f"| {report.target} | {report.cluster or ''} | {_picks(report.base)} |"
    if aligned:
      entered, left, rho = report.changes()
      moved = (", ".join(f"+{d}" for d in entered) + " " +
               ", ".join(f"-{d}" for d in left)).strip() or "same"
      row += (f" {_picks(report.aligned)} | {moved} | {rho:.3f} |" if report.aligned
              else " | | |")
    lines.append(row)
  # Only meaningful where the pool holds the targets' clusters (p3_train holds none: T0
  # keeps NLI, sentence completion, coreference and WSD out of training).
  coverable = [r for r in reports
               if r.cluster in {c.cluster for c in r.base.ranking}]
  same_cluster = sum(any(p.cluster == r.cluster for p in r.base.selected) for r in coverable)
  lines.append("")
  lines.append(f"Targets whose own cluster is in the pool: {len(coverable)} of {len(reports)}"
               + (f"; of those, {same_cluster} get a dataset of that cluster in the top "
                  f"{first.k} (base)." if coverable else "."))
  return "\n".join(lines) + "\n"
