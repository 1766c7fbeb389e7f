"""Preference data: the validated row form, loaders, image handling and CoPO corruption."""

from mmpo.data.corrupt import CorruptionConfig, corrupt_image
from mmpo.data.images import load_image
from mmpo.data.loaders import PreferenceData, load_preferences
from mmpo.data.schema import DataError, LoadReport, PreferenceExample

__all__ = [
    "CorruptionConfig",
    "DataError",
    "LoadReport",
    "PreferenceData",
    "PreferenceExample",
    "corrupt_image",
    "load_image",
    "load_preferences",
]
