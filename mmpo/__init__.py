"""mmpo: preference optimization (DPO, mDPO, MPO) for vision-language models."""

from mmpo.data import CorruptionConfig, DataError, PreferenceExample, corrupt_image, load_preferences
from mmpo.losses import compute_objective, parse_objective

__version__ = "0.1.0"

__all__ = [
    "CorruptionConfig",
    "DataError",
    "PreferenceExample",
    "compute_objective",
    "corrupt_image",
    "load_preferences",
    "parse_objective",
]
