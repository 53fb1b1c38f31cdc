"""INSTA: choose the training tasks for a target from their instructions alone (DESIGN.md 2).

  encoder.py     a JAX sentence encoder (BERT family, mean pooling) from a local snapshot
  instructions.py  the instruction text of a template; a target's and a pool's templates
  aggregate.py   per-dataset scores from a similarity table: mean, max, rank-weighted vote
  cache.py       embeddings on disk, keyed by encoder and text
  selection.py   select(): ranked datasets -> a SeqIO mixture insta/<target>/<pool>/top<k>
  align.py       the paper's aligned encoder, fine-tuned on the pool's own templates
  report.py      the selector on every T0 held-out target
"""
