"""benchmarks/quant_matmul.py --smoke runs on CPU (XLA, kernels interpreted) and writes JSON."""
import json
import subprocess
import sys

from conftest import REPO_ROOT, subprocess_env

VARIANTS = {"kernel", "xla_dequant", "xla_bf16_dot"}
FIELDS = {"m", "k", "n", "bits", "group", "variant", "impl", "interpret", "kernel_used",
          "time_s", "tflops", "bytes", "gbps", "hbm_fraction"}


def test_smoke_run_writes_json(tmp_path):
  out = tmp_path / "r.json"
  proc = subprocess.run([sys.executable, "benchmarks/quant_matmul.py", "--smoke", "--out",
                         str(out)], cwd=REPO_ROOT, env=subprocess_env(), capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert result["backend"] == "cpu" and result["smoke"] is True
  assert result["hbm_gbps"] > 0
  assert result["imported_tensorflow"] is False and result["imported_seqio"] is False
  rows = result["results"]
  assert {row["variant"] for row in rows} == VARIANTS
  for row in rows:
    assert FIELDS <= set(row), row
    assert row["time_s"] > 0 and row["bytes"] > 0
    assert abs(row["tflops"] - 2 * row["m"] * row["k"] * row["n"] / row["time_s"] / 1e12) < 1e-9
    assert abs(row["hbm_fraction"] - row["gbps"] / result["hbm_gbps"]) < 1e-9
  kernels = [row for row in rows if row["variant"] == "kernel"]
  assert {row["impl"] for row in kernels} == {"gpu", "tpu"}
  assert all(row["interpret"] and row["kernel_used"] for row in kernels)
  # 4-bit, group 128, K = N = 256: x + codes + scales + zeros + y.
  row = next(r for r in kernels if (r["m"], r["bits"], r["group"]) == (16, 4, 128))
  assert row["bytes"] == 16 * 256 * 2 + 128 * 256 + 2 * 256 * 4 + 2 * 256 + 16 * 256 * 2
