"""Core model: shapes, masks, missing images, incremental decoding, architectures."""

import pytest
import torch

from unix import ARCHS, UnixConfig, UnixModel
from unix.models import reorder_cache, reorder_encoder_out
from unix.modules.attention import MultiheadAttention

V, PAD = 40, 1
TINY_WIDTH = dict(embed_dim=32, ffn_dim=64, heads=2, max_visual_tokens=128, dropout=0.0)


def build(arch="unix_tiny", **kw):
    torch.manual_seed(0)
    cfg = UnixConfig.from_arch(arch, **{**TINY_WIDTH, **kw})
    return UnixModel(cfg, V, PAD).eval()


def batch(B=3, T=7, N=5, C=16):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, V, (B, T), generator=g)
    src[0, 5:] = PAD  # right-padded row
    prev = torch.randint(4, V, (B, 6), generator=g)
    feats = torch.randn(B, N, C, generator=g)
    mask = torch.tensor([True, False, True])[:B]
    return src, prev, feats, mask


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_forward_shapes_every_arch(arch):
    model = build(arch, image_feature_dim=16)
    src, prev, feats, mask = batch()
    enc = model.encode(src, image_features=feats, image_mask=mask)
    assert enc["out"].shape == (3, 5 + 7, 32)
    assert enc["padding_mask"].shape == (3, 12)
    # visual positions of the sample without image are padding, the others are not
    assert enc["padding_mask"][1, :5].all() and not enc["padding_mask"][0, :5].any()
    logits = model.decode(prev, enc)
    assert logits.shape == (3, 6, V)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_incremental_decoding_equals_full(arch):
    model = build(arch, image_feature_dim=16)
    src, prev, feats, mask = batch()
    enc = model.encode(src, image_features=feats, image_mask=mask)
    full = model.decode(prev, enc)
    cache = {}
    steps = [model.decode(prev[:, : t + 1], enc, cache) for t in range(prev.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def test_missing_image_is_text_only():
    """A sample without image gets exactly the output of a text-only batch."""
    model = build(image_feature_dim=16)
    src, prev, feats, mask = batch()
    mixed = model(src, prev, image_features=feats, image_mask=mask)
    alone = model(src[1:2], prev[1:2])
    torch.testing.assert_close(mixed[1:2], alone, atol=1e-5, rtol=1e-4)
    # and the image does change the output of a sample that has one
    no_img = model(src[0:1], prev[0:1])
    assert (mixed[0:1] - no_img).abs().max() > 1e-3


def test_padding_side_does_not_matter():
    model = build()
    src = torch.tensor([[5, 6, 7, 2]])
    right = torch.tensor([[5, 6, 7, 2, PAD, PAD]])
    left = torch.tensor([[PAD, PAD, 5, 6, 7, 2]])
    prev = torch.tensor([[2, 8, 9]])
    ref = model(src, prev)
    torch.testing.assert_close(model(right, prev), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model(left, prev), ref, atol=1e-5, rtol=1e-4)


def test_reorder_encoder_out_and_cache():
    model = build(image_feature_dim=16)
    src, prev, feats, mask = batch()
    enc = model.encode(src, image_features=feats, image_mask=mask)
    order = torch.tensor([2, 2, 0])
    cache = {}
    model.decode(prev[:, :1], enc, cache)
    model.decode(prev[:, :2], enc, cache)
    reorder_cache(cache, order)
    step = model.decode(prev[order, :3], reorder_encoder_out(enc, order), cache)
    ref = model.decode(prev[order, :3], reorder_encoder_out(enc, order))[:, -1:]
    torch.testing.assert_close(step, ref, atol=1e-5, rtol=1e-4)


def test_attention_masks_padding_keys():
    torch.manual_seed(0)
    attn = MultiheadAttention(8, 2).eval()
    q = torch.randn(1, 2, 8)
    k = torch.randn(1, 4, 8)
    pad = torch.tensor([[False, False, True, True]])
    out = attn(q, k, key_padding_mask=pad)
    k2 = k.clone()
    k2[:, 2:] = 100.0  # changing padded keys changes nothing
    torch.testing.assert_close(attn(q, k2, key_padding_mask=pad), out)


def test_pixels_through_timm_backbone_and_frozen():
    model = build(image_encoder="test_efficientnet")
    enc_mod = model.encoder.image_encoder
    assert all(not p.requires_grad for p in enc_mod.backbone.parameters())
    model.train()
    assert not enc_mod.backbone.training  # frozen backbone stays in eval mode
    src, prev, _, mask = batch()
    images = torch.randn(3, 3, 64, 64)
    logits = model(src, prev, images=images, image_mask=mask)
    logits.sum().backward()
    assert model.encoder.image_encoder.proj.weight.grad is not None


def test_half_precision_model_takes_fp32_pixels():
    """fairseq-generate --fp16 converts the model to half, not the pixels of a sample (seen on a GPU)."""
    model = build(image_encoder="test_efficientnet")
    src, prev, _, mask = batch()
    images = torch.randn(3, 3, 64, 64)
    ref = model(src, prev, images=images, image_mask=mask)
    low = model.to(torch.bfloat16)(src, prev, images=images, image_mask=mask)  # bf16: what the CPU runs
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.25 * ref.std()


def test_vit_backbone_tokens():
    model = build(image_encoder="test_vit")
    vis = model.encoder.encode_visual_tokens(images=torch.randn(2, 3, 160, 160))
    assert vis.shape == (2, 101, 32)  # 100 patches + class token


def test_greedy_decode_runs_without_fairseq():
    model = build(image_feature_dim=16)
    src, _, feats, mask = batch()
    out = model.greedy_decode(src, bos=2, eos=2, max_len=5, image_features=feats, image_mask=mask)
    assert out.shape[0] == 3 and out.shape[1] <= 5


def test_pooled_embeddings_need_heads():
    model = build(image_feature_dim=16)
    with pytest.raises(RuntimeError, match="embed_proj_dim"):
        model.encode_text(torch.tensor([[5, 6, 2]]))
    model = build(image_feature_dim=16, embed_proj_dim=8)
    src, _, feats, _ = batch()
    t = model.encode_text(src)
    i = model.encode_image(features=feats)
    assert t.shape == i.shape == (3, 8)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))


def test_unknown_arch_and_bad_features():
    with pytest.raises(KeyError, match="unknown architecture"):
        UnixConfig.from_arch("unix_huge")
    model = build(image_feature_dim=16)
    src, prev, feats, mask = batch()
    with pytest.raises(ValueError, match="channels"):
        model(src, prev, image_features=torch.randn(3, 5, 7), image_mask=mask)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_duplicate_rows_are_encoded_once_with_the_same_output_and_gradient(arch):
    """duplicate_of: only the distinct rows reach the encoder layers; outputs and gradients equal a full pass."""
    from unix.data.collate import duplicate_index

    model = build(arch, image_feature_dim=16)
    src, prev, feats, mask = batch(B=3)
    # rows 3, 4 repeat the input of row 0 (other targets), row 5 repeats row 1 (no image)
    rows = torch.tensor([0, 1, 2, 0, 0, 1])
    src, feats, mask = src[rows], feats[rows], mask[rows]
    prev = torch.randint(4, V, (6, 6), generator=torch.Generator().manual_seed(2))
    dup = duplicate_index(rows.tolist())
    assert dup.tolist() == [0, 1, 2, 0, 0, 1]
    seen = []
    hook = model.encoder.fusion_layers[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    grads = []
    for d in (None, dup):
        model.zero_grad()
        feats_d = feats.clone().requires_grad_()
        logits = model(src, prev, image_features=feats_d, image_mask=mask, duplicate_of=d)
        logits.logsumexp(-1).sum().backward()
        per_input = torch.zeros_like(feats).index_add_(0, dup, feats_d.grad)  # repeats' grads summed
        grads.append((logits.detach(), per_input, model.encoder.modality.weight.grad.clone()))
    hook.remove()
    assert seen == [6, 3]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_duplicate_of_must_point_at_rows_that_point_at_themselves():
    model = build(image_feature_dim=16)
    src, _, feats, mask = batch()
    with pytest.raises(ValueError, match="duplicate_of"):
        model.encode(src, image_features=feats, image_mask=mask, duplicate_of=torch.tensor([1, 2, 2]))
