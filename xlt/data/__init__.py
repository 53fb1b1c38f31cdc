"""The data layer: the only part of xlt that imports TensorFlow and SeqIO.

`DataConfig` is importable without them; `xlt.data.pipeline` imports them.
"""
from xlt.data.config import DataConfig

__all__ = ["DataConfig"]
