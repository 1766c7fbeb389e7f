"""Models: loading any HF image-text-to-text model, LoRA placement, response log-probs."""

from mmpo.model.load import language_model_lora_targets, load_model, load_processor, save_processor
from mmpo.model.logps import encode_image_sets, image_encoder_frozen, sequence_logps
from mmpo.model.tiny import FAMILIES, build_tiny_model

__all__ = [
    "FAMILIES",
    "build_tiny_model",
    "encode_image_sets",
    "image_encoder_frozen",
    "language_model_lora_targets",
    "load_model",
    "load_processor",
    "save_processor",
    "sequence_logps",
]
