"""`xlt tasks list | show | check`: what is registered, what it renders, whether it works.

  xlt tasks list [PATTERN] [--cluster C] [--language ko] [--split train|eval] [--mixtures]
  xlt tasks show TASK [--n 3] [--split validation]
  xlt tasks check [PATTERN] [--n 5]

check renders the first rows of every registered template task whose data is present
and exits non-zero if a template fails on its data, renders no row (an empty or
header-only file: the FAIL line names it), or a cross-lingual template could not be
localized; datasets whose files are absent are listed with where to get them, not counted
as failures. check and show also read every row of the local data files they use and
print how many were read, kept and skipped (by reason; unreadable rows with file:line).
"""
from __future__ import annotations

import argparse
import itertools
import sys

EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="xlt tasks", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command")
  ls = sub.add_parser("list", help="registered tasks (or mixtures) with their axes")
  ls.add_argument("pattern", nargs="?", default="")
  ls.add_argument("--cluster")
  ls.add_argument("--language", choices=["en", "ko"], help="language of the data")
  ls.add_argument("--split", choices=["train", "eval"], help="tasks meant for training / eval")
  ls.add_argument("--mixtures", action="store_true", help="list mixtures instead")
  show = sub.add_parser("show", help="rendered examples of one task")
  show.add_argument("task")
  show.add_argument("--n", type=int, default=3)
  show.add_argument("--split", default=None, help="default: validation if it has one")
  check = sub.add_parser("check", help="render every template on every available source")
  check.add_argument("pattern", nargs="?", default="")
  check.add_argument("--n", type=int, default=5, help="rows per task")
  return parser


def _default_split(name: str, split: str | None) -> str:
  import seqio
  splits = list(seqio.get_mixture_or_task(name).splits)
  if split:
    return split
  return "validation" if "validation" in splits else splits[0]


def _count_rows(source, split: str):
  """Every row of `split` read once, for its read / kept / skipped counts."""
  from xlt.data.sources.base import RowStats
  stats = RowStats(f"{source.dataset}/{split}")
  for _ in source.rows(split, stats):
    pass
  return stats


def _list(args) -> int:
  import seqio

  from xlt.data import template_tasks
  if args.mixtures:
    for name in sorted(seqio.MixtureRegistry.names()):
      if args.pattern in name:
        print(f"{name}\t{len(seqio.get_mixture_or_task(name).tasks)} tasks")
    return 0
  rows = []
  for name in sorted(seqio.TaskRegistry.names()):
    info = template_tasks.TASKS.get(name)
    if args.pattern not in name:
      continue
    if info is None:
      if not (args.cluster or args.language or args.split):
        rows.append((name, "-", "-", "-", "-"))
      continue
    if ((args.cluster and info.cluster != args.cluster)
        or (args.language and info.language != args.language)
        or (args.split and info.purpose != args.split)):
      continue
    axes = (f"{info.template_language}/{info.template.style}/ans-{info.answer_language}"
            if info.template else "pre-rendered")
    rows.append((name, info.dataset, info.cluster, info.language, axes))
  for row in rows:
    print("\t".join(row))
  print(f"# {len(rows)} tasks", file=sys.stderr)
  return 0


def _show(args) -> int:
  from xlt.data import template_tasks
  from xlt.data.registry import get_task_or_mixture
  get_task_or_mixture(args.task)  # unknown names get suggestions
  render = template_tasks.RENDERERS.get(args.task)
  if render is None:
    print(f"error: {args.task!r} is not a template task of xlt (no rendered rows to show)",
          file=sys.stderr)
    return 2
  split = _default_split(args.task, args.split)
  info = template_tasks.TASKS[args.task]
  if info.template:
    print(f"# {args.task}: dataset {info.dataset}, template {info.template.dataset}/"
          f"{info.template.name} ({info.template_language}, {info.template.style}, "
          f"answers {info.answer_language}), split {split}")
  try:
    for i, row in enumerate(itertools.islice(render(split), args.n)):
      print(f"--- example {i + 1}\n[inputs]\n{row['inputs']}\n[targets]\n{row['targets']}")
      if row["answer_choices"]:
        print(f"[choices]\n{' | '.join(row['answer_choices'])}")
    source = template_tasks.SOURCES.get(args.task)
    if source is not None and source.reads_local_files:
      print(f"# rows: {_count_rows(source, split).summary()}")
    elif (args.task, split) in template_tasks.STATS:
      print(f"# rows (of those shown): {template_tasks.STATS[(args.task, split)].summary()}")
  except ValueError as e:  # EmptyTaskError: no data rows, every row skipped
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _check(args) -> int:
  from xlt.data import template_tasks
  from xlt.data.sources.base import MissingDataError
  failures, missing, ok = [], {}, 0
  to_count = {}  # (source, split) read by the tasks checked, once each
  for name, info in sorted(template_tasks.TASKS.items()):
    if info.score_eval or args.pattern not in name or name not in template_tasks.RENDERERS:
      continue
    split = _default_split(name, None)
    source = template_tasks.SOURCES.get(name)
    if source is not None and source.reads_local_files:
      to_count.setdefault((id(source), split), (source, split))
    try:
      rendered = sum(1 for _ in itertools.islice(template_tasks.RENDERERS[name](split), args.n))
    except MissingDataError as e:
      missing.setdefault(f"{name.split('_', 1)[0]}:{info.dataset}", e.expected)
      continue
    except ValueError as e:  # EmptyTaskError (no data rows, all skipped), malformed files
      failures.append(f"{name} ({split}): "
                      + str(e).removeprefix(f"task {name!r}, split {split!r}: "))
      continue
    stats = template_tasks.STATS.get((name, split))
    bad = {r: n for r, n in (stats.skipped.items() if stats else ()) if r.startswith("template:")}
    if bad or not rendered:
      reasons = "; ".join(f"{n}x {r}" for r, n in bad.items()) or "no row rendered"
      failures.append(f"{name} ({split}): {reasons}")
    else:
      ok += 1
  from tasks import crosslingual, korani
  failures += [f"cross-lingual: {p}" for p in crosslingual.PROBLEMS]
  for info in korani.MISSING:
    missing.setdefault(f"korani:{info.key}", f"in the KORANI release ({info.url})")
  counts = []
  for source, split in to_count.values():
    try:
      counts.append(_count_rows(source, split).summary())
    except (MissingDataError, ValueError):
      continue  # the tasks reading it are reported absent / FAIL already
  print(f"{ok} tasks render; {len(failures)} fail; {len(missing)} datasets absent "
        "(how to get each: docs/data.md, or `xlt tasks show TASK`)")
  for summary in sorted(counts):
    print(f"  rows    {summary}")
  for dataset, expected in sorted(missing.items()):
    print(f"  absent  {dataset}: expected {expected}")
  for failure in failures:
    print(f"  FAIL    {failure}")
  return EXIT_FAILED if failures else 0


def main(argv: list[str]) -> int:
  from xlt.data import registry
  registry.import_task_modules()
  if not argv or argv[0] not in ("list", "show", "check", "-h", "--help"):
    argv = ["list"] + argv  # `xlt tasks [PATTERN]` keeps working
  args = _parser().parse_args(argv)
  return {"list": _list, "show": _show, "check": _check}[args.command](args)
