"""unix: cross-lingual, cross-modal generation with one image-text encoder-decoder.

The core library is plain PyTorch and never imports fairseq; ``fairseq_plugins`` adapts it.
"""

from unix.config import ARCHS, UnixConfig
from unix.models import UnixModel

__version__ = "0.1.0"
__all__ = ["ARCHS", "UnixConfig", "UnixModel", "__version__"]
