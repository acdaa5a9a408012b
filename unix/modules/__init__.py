"""Small building blocks: attention and Transformer layers."""

from unix.modules.attention import MultiheadAttention
from unix.modules.layers import DecoderLayer, EncoderLayer, FeedForward, SinusoidalPositions

__all__ = ["MultiheadAttention", "EncoderLayer", "DecoderLayer", "FeedForward", "SinusoidalPositions"]
