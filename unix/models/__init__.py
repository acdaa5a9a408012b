"""Models: image encoder, text + cross-modal encoder, decoder, the full encoder-decoder."""

from unix.models.decoder import UnixDecoder, reorder_cache
from unix.models.encoder import UnixEncoder, reorder_encoder_out
from unix.models.image_encoder import ImageEncoder, create_backbone
from unix.models.unix_model import UnixModel, build_embedding

__all__ = ["UnixModel", "UnixEncoder", "UnixDecoder", "ImageEncoder", "create_backbone",
           "build_embedding", "reorder_cache", "reorder_encoder_out"]
