"""The ``unix`` model's options are generated from :class:`unix.config.UnixConfig`'s fields."""

from dataclasses import dataclass, field, fields

import pytest

import fairseq_plugins  # noqa: F401
from fairseq_plugins.models.unix import UnixModelConfig, model_option_fields, unix_config_from
from unix.config import UnixConfig


def test_every_unixconfig_field_is_an_option_with_its_default_and_help():
    options = {f.name: f for f in fields(UnixModelConfig)}
    for f in fields(UnixConfig):
        assert f.name in options, f.name
        assert options[f.name].default == f.default
        assert f.metadata["help"] and options[f.name].metadata["help"].startswith(f.metadata["help"])
    # the True-default booleans come with the flag that switches them off
    assert options["untie_embeddings"].default is False
    assert options["finetune_image_encoder"].default is False
    assert set(options) - {f.name for f in fields(UnixConfig)} == {"_name", "untie_embeddings",
                                                                   "finetune_image_encoder"}


def test_negation_flags_switch_their_field_off():
    cfg = UnixModelConfig(untie_embeddings=True, finetune_image_encoder=True, embed_dim=16)
    core = unix_config_from(cfg)
    assert (core.share_all_embeddings, core.freeze_image_encoder, core.embed_dim) == (False, False, 16)
    core = unix_config_from(UnixModelConfig())
    assert (core.share_all_embeddings, core.freeze_image_encoder) == (True, True)


def test_a_new_field_becomes_an_option_and_a_true_boolean_needs_its_negation():
    @dataclass
    class Extended(UnixConfig):
        image_fusion: str = field(default="concat", metadata={"help": "how images join the text"})

    names = [name for name, _, _ in model_option_fields(Extended)]
    assert names[-1] == "image_fusion"

    @dataclass
    class Bad(UnixConfig):
        gated: bool = field(default=True, metadata={"help": "a gate"})

    with pytest.raises(TypeError, match="Bad.gated: a boolean that defaults to True needs negated_by"):
        model_option_fields(Bad)
