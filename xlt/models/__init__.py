"""Models: the mT5 / T5.1.1 encoder-decoder."""
from xlt.models.config import MT5_SIZES, TINY, T5Config
from xlt.models.t5 import Transformer, init_params

__all__ = ["MT5_SIZES", "TINY", "T5Config", "Transformer", "init_params"]
