"""Training: the config dataclass, the Trainer subclass and the `train()` entry point."""

from mmpo.train.config import TrainConfig
from mmpo.train.run import TrainResult, train
from mmpo.train.trainer import PreferenceTrainer

__all__ = ["PreferenceTrainer", "TrainConfig", "TrainResult", "train"]
