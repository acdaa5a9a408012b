"""Gated fusion (Revisit-MMT, Wu et al. 2021): the module, and the encoder with image_fusion="gated"."""

import pytest
import torch

from unix import UnixConfig, UnixModel
from unix.models import ImageEncoder
from unix.modules.gated_fusion import GatedImageFusion

V, PAD, D, C = 40, 1, 32, 16


def build(**kw):
    torch.manual_seed(0)
    cfg = UnixConfig.from_arch("unix_tiny", embed_dim=D, ffn_dim=64, heads=2, dropout=0.0, image_feature_dim=C,
                               image_fusion="gated", **kw)
    return UnixModel(cfg, V, PAD).eval()


def batch(B=3, T=7, N=5):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (B, T), generator=g)
    src[0, 5:] = PAD
    prev = torch.randint(4, V, (B, 6), generator=g)
    feats = torch.randn(B, N, C, generator=g)
    return src, prev, feats, torch.tensor([True, False, True])


def test_gate_values_by_hand():
    """With W = 0 and bias b the gate is sigmoid(b) everywhere: out = h + sigmoid(b) * v."""
    fuse = GatedImageFusion(2)
    with torch.no_grad():
        fuse.gate_dense.weight.zero_()
        fuse.gate_dense.bias.copy_(torch.tensor([0.0, 2.0]))
    text = torch.tensor([[[1.0, -1.0], [0.5, 0.5]], [[3.0, 3.0], [0.0, 0.0]]])  # (B=2, T=2, D=2)
    image = torch.tensor([[2.0, 4.0], [7.0, 7.0]])  # (B, D)
    out, gate = fuse(text, image, torch.tensor([True, False]))
    s = torch.sigmoid(torch.tensor(2.0)).item()  # 0.8808
    assert gate.shape == out.shape == (2, 2, 2)
    torch.testing.assert_close(gate[0], torch.tensor([[0.5, s], [0.5, s]]))
    torch.testing.assert_close(out[0], torch.tensor([[1 + 0.5 * 2, -1 + s * 4], [0.5 + 0.5 * 2, 0.5 + s * 4]]))
    assert gate[1].eq(0).all() and torch.equal(out[1], text[1])  # no image: unchanged, gate 0


def test_gate_reads_text_and_image():
    """The gate depends on the text state of each position and on the image vector."""
    torch.manual_seed(0)
    fuse = GatedImageFusion(4)
    text, image = torch.randn(1, 3, 4), torch.randn(1, 4)
    _, gate = fuse(text, image)
    assert ((gate > 0) & (gate < 1)).all()
    assert not torch.allclose(gate[0, 0], gate[0, 1])  # per position
    _, gate2 = fuse(text, image + 1.0)
    assert not torch.allclose(gate, gate2)
    with pytest.raises(ValueError, match=r"expected \(B, D\)"):
        fuse(text, torch.randn(1, 3))


def test_gated_encoder_shapes_and_decoding():
    model = build()
    src, prev, feats, mask = batch()
    enc = model.encode(src, image_features=feats, image_mask=mask)
    assert enc["out"].shape == (3, 7, D) and torch.equal(enc["padding_mask"], src.eq(PAD))  # no visual tokens
    full = model.decode(prev, enc)
    assert full.shape == (3, 6, V) and torch.isfinite(full).all()
    cache = {}
    steps = torch.cat([model.decode(prev[:, : t + 1], enc, cache) for t in range(prev.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_text_only_rows_unchanged_and_the_image_changes_the_output():
    model = build()
    src, prev, feats, mask = batch()
    mixed = model.encode(src, image_features=feats, image_mask=mask)["out"]
    text_only = model.encode(src)["out"]
    torch.testing.assert_close(mixed[1], text_only[1], atol=0, rtol=0)  # the row without an image
    assert (mixed[0] - text_only[0]).abs().max() > 1e-3 and (mixed[2] - text_only[2]).abs().max() > 1e-3
    # a row's output does not depend on the other rows' images
    other = feats.clone()
    other[2] += 1.0
    again = model.encode(src, image_features=other, image_mask=mask)["out"]
    torch.testing.assert_close(again[0], mixed[0])
    assert (again[2] - mixed[2]).abs().max() > 1e-4
    # exactly the gated sum of the pooled, projected features
    enc = model.encoder
    vec = enc.image_encoder.proj(feats[0].mean(0))
    gate = torch.sigmoid(enc.image_gate.gate_dense(torch.cat([text_only[0], vec.expand(7, D)], -1)))
    torch.testing.assert_close(mixed[0], text_only[0] + gate * vec)


def test_gated_model_has_no_visual_tokens_and_only_the_gate_in_addition():
    gated, tokens = build(), UnixModel(UnixConfig.from_arch(
        "unix_tiny", embed_dim=D, ffn_dim=64, heads=2, image_feature_dim=C), V, PAD)
    names = {n for n, _ in gated.named_parameters()}
    assert "encoder.image_gate.gate_dense.weight" in names and "encoder.image_encoder.proj.weight" in names
    assert not any(n.startswith("encoder.image_encoder.norm") or n.endswith("positions") and "image" in n
                   for n in names)
    extra = sum(p.numel() for p in gated.encoder.image_gate.parameters())
    assert extra == 2 * D * D + D
    n_tokens = sum(p.numel() for p in tokens.parameters())
    n_gated = sum(p.numel() for p in gated.parameters())
    visual_head = 2 * D + tokens.cfg.max_visual_tokens * D  # token LayerNorm + positions
    assert n_gated == n_tokens - visual_head + extra
    with pytest.raises(RuntimeError, match="pooled vectors only"):
        gated.encoder.encode_visual_tokens(features=torch.randn(1, 5, C))


def test_pooled_image_vector():
    torch.manual_seed(0)
    enc = ImageEncoder(D, feature_dim=C, tokens=False)
    feats = torch.randn(2, 5, C)
    torch.testing.assert_close(enc.pooled(features=feats), feats.mean(1) @ enc.proj.weight.T + enc.proj.bias)


def test_unknown_fusion_is_an_error():
    with pytest.raises(ValueError, match="image_fusion 'late'"):
        UnixConfig(image_fusion="late")
