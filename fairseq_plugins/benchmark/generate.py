"""``unix-benchmark generate``: beam-search speed on CPU: unix's beam search vs fairseq's generator vs Hugging Face's generate.

Issue #34 asks that the pipeline's beam search (:func:`unix.generation.beam_search`) run at
least 1.5x Hugging Face's ``VisionEncoderDecoderModel.generate`` at equal size, batch, beam and
length on CPU. In one process, with ``--threads`` torch threads, this command builds

* a random ``UnixModel`` of ``unix_small``'s shape (``--dim`` wide, 2 text + 2 fusion encoder
  layers, ``--layers`` decoder layers, ``--vocab`` tokens, tied embeddings) reading
  ``--visual-tokens`` cached visual features per image (``--feature-dim`` channels) and a
  language tag + ``</s>`` as source (captioning);
* the same model wrapped by the fairseq plugin (``fairseq_plugins.models.unix``) under fairseq's
  ``SequenceGenerator`` (if fairseq is installed);
* a random ``VisionEncoderDecoderModel`` of the same sizes (if ``transformers`` is installed): a
  ViT encoder (``--dim`` wide, 4 layers, 224-pixel images in 32-pixel patches = 49 patches + CLS)
  and a BERT decoder with cross-attention (``--layers`` layers, ``--dim`` wide, ``--vocab``).

Every system decodes the same batches with ``--beam`` beams and exactly ``--tokens`` decoder steps
(eos forbidden before: ``min_len = max_len = tokens - 1`` then the forced ``</s>`` for unix and
fairseq, ``min_new_tokens = max_new_tokens = tokens`` for Hugging Face), encoder included, in
interleaved rounds so that machine load hits all alike. It prints sentences/s (batch / median
time per call) of each and unix's speed-up over the others (ratio of the medians and median of
the per-round ratios), in process CPU time (the steadier measure on a shared machine: it leaves
out the time spent waiting for a core) and in wall-clock time, and checks that unix and fairseq return the same
hypotheses.

Example::

    unix-benchmark generate --rounds 10 --json bench.json
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time

import torch

from fairseq_plugins.benchmark.timing import peer_ratios, time_interleaved
BOS, PAD, EOS, UNK, TAG = 0, 1, 2, 3, 4  # fairseq's Dictionary layout; TAG stands for a language tag


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=16, help="sentences (images) per call")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--tokens", type=int, default=20, help="decoder steps = output tokens per hypothesis")
    p.add_argument("--dim", type=int, default=128, help="model width")
    p.add_argument("--ffn", type=int, default=256, help="feed-forward width")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4, help="decoder layers (and ViT encoder layers)")
    p.add_argument("--vocab", type=int, default=6000)
    p.add_argument("--visual-tokens", type=int, default=49, help="cached visual tokens per image (unix)")
    p.add_argument("--feature-dim", type=int, default=128, help="channels of the cached visual features (unix)")
    p.add_argument("--rounds", type=int, default=10, help="timed calls per system, interleaved")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--systems", default="unix,fairseq,hf", help="comma-separated subset of unix,fairseq,hf")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of one unix call")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--caption-photos", default=None, metavar="DIR",
                   help="also time end-to-end captioning of photos of DIR with a model directory (JPEG decode + "
                        "backbone + beam search, unix.pipeline), reported beside the beam-search figures")
    p.add_argument("--caption-model", default=None, help="model directory or bundled name (default: the bundled one)")
    p.add_argument("--caption-count", type=int, default=64, help="photos captioned per timed call")
    p.add_argument("--caption-threads", type=int, default=2, help="torch threads for the end-to-end captioning")
    p.add_argument("--caption-beam", type=int, default=3)


# -- the systems --------------------------------------------------------------------------------------------
def build_unix(args):
    from unix import UnixConfig, UnixModel

    torch.manual_seed(args.seed)
    cfg = UnixConfig.from_arch("unix_small", embed_dim=args.dim, ffn_dim=args.ffn, heads=args.heads,
                               decoder_layers=args.layers, image_feature_dim=args.feature_dim,
                               max_visual_tokens=max(64, args.visual_tokens))
    return UnixModel(cfg, args.vocab, PAD).eval()


def unix_inputs(args):
    g = torch.Generator().manual_seed(args.seed)
    src = torch.tensor([[TAG, EOS]] * args.batch)
    return {"src_tokens": src, "src_lengths": torch.full((args.batch,), 2),
            "image_features": torch.randn(args.batch, args.visual_tokens, args.feature_dim, generator=g),
            "image_mask": torch.ones(args.batch, dtype=torch.bool)}


def unix_runner(model, inputs, args):
    from unix.generation import beam_search

    n = args.tokens - 1

    def run():
        return beam_search(model, inputs["src_tokens"], inputs["src_lengths"], eos=EOS, pad=PAD, unk=UNK,
                           image_features=inputs["image_features"], image_mask=inputs["image_mask"],
                           beam=args.beam, max_len_a=0, max_len_b=n, min_len=n)
    return run


def fairseq_runner(model, inputs, args):
    """fairseq's SequenceGenerator on the same core model through the plugin's adapter."""
    import fairseq_plugins  # noqa: F401  (registers the plugins)
    from fairseq.data import Dictionary
    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_plugins.models.unix import UnixFairseqDecoder, UnixFairseqEncoder, UnixFairseqModel

    d = Dictionary()
    for i in range(args.vocab - len(d)):
        d.add_symbol(f"w{i}")
    assert len(d) == args.vocab and d.eos() == EOS and d.pad() == PAD
    fs_model = UnixFairseqModel(UnixFairseqEncoder(d, model.encoder), UnixFairseqDecoder(d, model.decoder)).eval()
    n = args.tokens - 1
    gen = SequenceGenerator([fs_model], d, beam_size=args.beam, max_len_a=0, max_len_b=n, min_len=n)
    sample = {"net_input": dict(inputs)}

    def run():
        with torch.no_grad():
            return gen.generate([fs_model], sample)
    return run


def build_hf(args):
    from transformers import BertConfig, BertLMHeadModel, ViTConfig, ViTModel, VisionEncoderDecoderModel

    torch.manual_seed(args.seed)
    enc = ViTModel(ViTConfig(hidden_size=args.dim, num_hidden_layers=4, num_attention_heads=args.heads,
                             intermediate_size=args.ffn, image_size=224, patch_size=32), add_pooling_layer=False)
    dec = BertLMHeadModel(BertConfig(vocab_size=args.vocab, hidden_size=args.dim, num_hidden_layers=args.layers,
                                     num_attention_heads=args.heads, intermediate_size=args.ffn,
                                     max_position_embeddings=max(64, args.tokens + 2), is_decoder=True,
                                     add_cross_attention=True, pad_token_id=PAD))
    model = VisionEncoderDecoderModel(encoder=enc, decoder=dec).eval()
    model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id = EOS, PAD, EOS
    return model


def hf_runner(model, args):
    g = torch.Generator().manual_seed(args.seed)
    pixels = torch.randn(args.batch, 3, 224, 224, generator=g)

    def run():
        return model.generate(pixel_values=pixels, num_beams=args.beam, max_new_tokens=args.tokens,
                              min_new_tokens=args.tokens, do_sample=False, decoder_start_token_id=EOS,
                              eos_token_id=EOS, pad_token_id=PAD, length_penalty=1.0, early_stopping=False)
    return run


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


# -- checks and end-to-end ---------------------------------------------------------------------------------------
def same_hypotheses(ours, theirs) -> bool:
    return all(o[0].tokens.tolist() == t[0]["tokens"].tolist() and abs(o[0].score - float(t[0]["score"])) < 1e-4
               for o, t in zip(ours, theirs))


def time_captioning(args) -> dict:
    """photos/s of ``Pipeline.caption`` on raw photos (decode + backbone + beam search), median of 3 calls."""
    from unix.pipeline import load

    names = sorted(n for n in os.listdir(args.caption_photos) if n.lower().endswith((".jpg", ".jpeg", ".png")))
    photos = [os.path.join(args.caption_photos, n) for n in names[: args.caption_count]]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.caption_threads)
    try:
        m = load(args.caption_model)
        m.caption(photos[:4], beam=args.caption_beam)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            m.caption(photos, beam=args.caption_beam, batch_size=32)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    rate = len(photos) / statistics.median(times)
    print(f"-- end-to-end captioning ({m.model_dir}): {len(photos)} photos, beam {args.caption_beam}, "
          f"{args.caption_threads} threads: {rate:.1f} photos/s (wall, median of 3 calls)")
    return {"model": m.model_dir, "photos": len(photos), "beam": args.caption_beam,
            "threads": args.caption_threads, "photos_per_s": rate, "times_s": times}


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    model = build_unix(args)
    inputs = unix_inputs(args)
    runners = {"unix": unix_runner(model, inputs, args)}
    sizes = {"unix": parameters(model)}
    skipped = {}
    if "fairseq" in systems:
        try:
            runners["fairseq"] = fairseq_runner(model, inputs, args)
            sizes["fairseq"] = sizes["unix"]
        except ImportError as e:
            skipped["fairseq"] = str(e)
    if "hf" in systems:
        try:
            hf = build_hf(args)
            runners["hf"] = hf_runner(hf, args)
            sizes["hf"] = parameters(hf)
        except ImportError as e:
            skipped["hf"] = f"transformers not importable ({e})"
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}")
    wall, cpu, outputs = time_interleaved(runners, args.rounds)
    report = {"output_lengths": {"unix": sorted({len(h[0].tokens) for h in outputs["unix"]})}}
    if "fairseq" in outputs:
        report["unix_equals_fairseq"] = same_hypotheses(outputs["unix"], outputs["fairseq"])
        report["output_lengths"]["fairseq"] = sorted({len(h[0]["tokens"]) for h in outputs["fairseq"]})
        print(f"unix and fairseq best hypotheses identical: {report['unix_equals_fairseq']}")
    if "hf" in outputs:  # sequences start with the decoder start symbol
        report["output_lengths"]["hf"] = [outputs["hf"].shape[1] - 1]
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, beam {args.beam}, {args.tokens} decoder steps "
          f"(output tokens: {report['output_lengths']}), width {args.dim}, {args.layers} decoder layers, vocab "
          f"{args.vocab}, {args.rounds} interleaved rounds")
    for clock, times in (("cpu", cpu), ("wall", wall)):
        lines, report[clock] = peer_ratios(times, args.batch, sizes, clock)
        print("\n".join(lines))
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        runners["unix"]()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())
    if args.caption_photos:
        report["caption_end_to_end"] = time_captioning(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **report, "params": sizes, "skipped": skipped}, f, indent=1)
    return 0
