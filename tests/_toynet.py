"""ToyNet: a test-only scratch model, one file, as a contributor would add it to ``scratch_models/``.

tests/test_registry.py copies the ``scratch_models`` package to a temporary folder, drops this
file in as ``scratch_models/toynet.py`` and runs featx from there (a subprocess): nothing is
registered in the test process and nothing in the source tree changes.
"""

from ._googlenet import FEATURE_LAYER, Conv, Downsample, GoogLeNet, build_googlenet, inception2
from .registry import register_model

TOYNET = GoogLeNet(
    stages=(Conv("block1", 8, 3), inception2("2a", 4, 4), Downsample("down2", 8), inception2("3a", 8, 8)),
    input_size=16,
    default_classes=3,
    min_input_size=7,
    avg_pool=7,
    dropout=0.5,
)


@register_model(
    description="ToyNet: a test-only GoogLeNet stage table",
    input_size=TOYNET.input_size,
    default_classes=TOYNET.default_classes,
    feature_layer=FEATURE_LAYER,
    min_input_size=TOYNET.min_input_size,
    feature_dim=16,
    params=2_643,
)
def toynet(input_shape=None, classes=None, *, name="toynet"):
    """ToyNet; ``input_shape`` None -> 16x16x3, ``classes`` None -> 3."""
    return build_googlenet(TOYNET, input_shape, classes, name=name)
