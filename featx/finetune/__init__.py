"""``featx finetune``: a pretrained backbone adapted to an images store (linear probe, then fine-tune).

* :mod:`~featx.finetune.config`: :class:`FinetuneConfig`, both phases' parameters validated once;
* :mod:`~featx.finetune.network`: pixels -> backbone -> Dense head, BatchNorm frozen, which blocks train;
* :mod:`~featx.finetune.api`: :func:`finetune`, the two phases in a ``featx train`` run folder.

Importing this package does not import TensorFlow or Keras.
"""

from featx.backbones.layers import batchnorm_layers
from featx.finetune.api import FinetuneResult, check_head_settings, finetune
from featx.finetune.config import (
    BATCH_SIZE,
    FINETUNE_EPOCHS,
    FINETUNE_LR,
    HEAD_EPOCHS,
    HEAD_LR,
    UNFREEZE_ALL,
    WARMUP,
    FinetuneConfig,
    identity_keys,
    parse_unfreeze,
)
from featx.finetune.network import Network, build_network, set_phase

__all__ = [
    "BATCH_SIZE",
    "FINETUNE_EPOCHS",
    "FINETUNE_LR",
    "HEAD_EPOCHS",
    "HEAD_LR",
    "UNFREEZE_ALL",
    "WARMUP",
    "FinetuneConfig",
    "FinetuneResult",
    "Network",
    "batchnorm_layers",
    "build_network",
    "check_head_settings",
    "finetune",
    "identity_keys",
    "parse_unfreeze",
    "set_phase",
]
