"""benchmarks/eval_throughput.py runs on CPU (tiny mT5), without TensorFlow, and its xlt and
Hugging Face scores agree."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT, subprocess_env

pytest.importorskip("torch", reason="the eval throughput benchmark needs torch "
                    "(pip install -e .[hf])")
pytest.importorskip("transformers", reason="the eval throughput benchmark needs transformers "
                    "(pip install -e .[hf])")

# Runs the script as __main__ with TensorFlow and SeqIO made unimportable (the GPU machine).
_RUN_WITHOUT_TF = textwrap.dedent("""
    import runpy, sys
    for name in ("tensorflow", "seqio", "tensorflow_text", "tensorflow_datasets"):
      sys.modules[name] = None
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def test_tiny_run_on_cpu_without_tensorflow(tmp_path):
  out = tmp_path / "r.json"
  proc = subprocess.run(
      [sys.executable, "-c", _RUN_WITHOUT_TF, "benchmarks/eval_throughput.py", "--size", "tiny",
       "--batch", "4", "--steps", "2", "--repeats", "1", "--input_length", "32",
       "--target_length", "4", "--json", str(out)],
      cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result["xlt_choices_per_s"] > 0 and result["hf_choices_per_s"] > 0
  assert result["xlt_over_hf"] == pytest.approx(
      result["xlt_choices_per_s"] / result["hf_choices_per_s"], rel=1e-12)
  assert result["xlt_choices_per_s"] == pytest.approx(4 * 2 / (2 * result["xlt_s_per_batch"]))
  assert result["max_abs_score_diff"] <= 1e-3
  assert result["max_abs_score"] > 1.0  # real scores were compared, not zeros
  assert result["xlt_dtype"] == result["hf_dtype"] == "float32"
  assert "xlt / HF = x" in proc.stdout
