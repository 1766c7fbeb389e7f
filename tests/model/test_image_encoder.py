"""When the policy's image features may be handed to the reference pass."""

import torch
from peft import LoraConfig, get_peft_model

from mmpo.model import image_encoder_frozen, language_model_lora_targets, load_model
from mmpo.model.load import freeze_vision


def lora(model, targets):
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))


def test_lora_on_the_language_model_leaves_the_encoder_frozen(tiny_models):
    model = load_model(tiny_models["llava"], dtype=torch.float32)
    assert image_encoder_frozen(lora(model, language_model_lora_targets(model)))


def test_lora_in_the_projector_or_a_trainable_encoder_is_not_frozen(tiny_models):
    model = load_model(tiny_models["llava"], dtype=torch.float32)
    assert not image_encoder_frozen(model)  # a plain model trains everything
    model = load_model(tiny_models["llava"], dtype=torch.float32)
    assert not image_encoder_frozen(lora(model, r".*multi_modal_projector\.linear_1$"))


def test_separate_reference_must_hold_the_same_encoder(tiny_models):
    policy = load_model(tiny_models["llava"], dtype=torch.float32)
    freeze_vision(policy)
    reference = load_model(tiny_models["llava"], dtype=torch.float32)
    assert image_encoder_frozen(policy, reference)
    with torch.no_grad():
        next(reference.model.vision_tower.parameters()).add_(0.01)
    assert not image_encoder_frozen(policy, reference)


def test_a_frozen_adapter_in_the_encoder_still_blocks_reuse(tiny_models):
    """The reference pass disables every adapter, frozen ones too, so its features differ."""
    model = lora(load_model(tiny_models["llava"], dtype=torch.float32), r".*multi_modal_projector\.linear_1$")
    for name, param in model.named_parameters():
        param.requires_grad_(False)
    assert not image_encoder_frozen(model)
