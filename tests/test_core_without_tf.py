"""The library core runs where TensorFlow and SeqIO are absent (the GPU machine)."""
import subprocess
import sys
import textwrap

from conftest import REPO_ROOT, subprocess_env

_SCRIPT = textwrap.dedent("""
    import sys
    # A None entry makes `import X` fail and importlib.util.find_spec(X) report "absent".
    for name in ("tensorflow", "seqio", "tensorflow_text", "tensorflow_datasets"):
      sys.modules[name] = None
    import tempfile
    import jax, jax.numpy as jnp, numpy as np
    from xlt import checkpoints, losses, optimizers, partitioning, trainer, decoding
    from xlt.convert import hf_t5
    from xlt.models import TINY, Transformer
    from xlt.train_state import create_sharded_state
    from xlt.train_step import make_train_step

    mesh = partitioning.make_mesh(partitioning.MeshConfig())
    tx, schedule = optimizers.OptimizerConfig().build()
    state, shardings, _ = create_sharded_state(TINY, tx, mesh, partitioning.DEFAULT_RULES, 0)
    rng = np.random.default_rng(0)
    batch = {"encoder_input_tokens": rng.integers(2, 300, (4, 12)).astype(np.int32),
             "decoder_input_tokens": rng.integers(2, 300, (4, 6)).astype(np.int32),
             "decoder_target_tokens": rng.integers(2, 300, (4, 6)).astype(np.int32),
             "decoder_loss_weights": np.ones((4, 6), np.float32)}
    step = jax.jit(make_train_step(Transformer(TINY), tx, schedule, losses.LossConfig()))
    state, metrics = step(state, batch)
    d = tempfile.mkdtemp()
    ckpt = checkpoints.Checkpointer(d, checkpoints.CheckpointConfig(save_every_steps=1))
    ckpt.save(1, state, {"batches_consumed": 1}, TINY.to_dict(), force=True)
    ckpt.wait()
    step_, restored, data_state = ckpt.restore_latest(state, shardings)
    assert step_ == 1 and data_state == {"batches_consumed": 1}
    out = decoding.greedy_decode(Transformer(TINY), restored.params, batch["encoder_input_tokens"], 4)
    # INSTA's encoder and its scoring need neither (the GPU machine can embed and align).
    from xlt.insta import aggregate, align, instructions, selection
    from xlt.insta.encoder import SentenceEncoder
    vectors = SentenceEncoder.load(None).embed(["Is the review positive?", "Summarize it."])
    assert vectors.shape == (2, 384)
    assert sys.modules["tensorflow"] is None and sys.modules["seqio"] is None
    print("CORE-OK", float(metrics["loss"]), out.shape)
""")


def test_core_imports_and_trains_without_tensorflow():
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO_ROOT, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "CORE-OK" in proc.stdout
