"""``keras.applications`` backbones: ImageNet classifiers without their top, globally average-pooled.

Each builder returns the headless network (``include_top=False, pooling="avg"``, so the output is a
vector per image, not a ``7x7xC`` map) and the application's own ``preprocess_input``.
"""

from __future__ import annotations

from featx.backbones.registry import register_backbone


def _app(module: str, constructor: str, weights, input_shape):
    import importlib

    mod = importlib.import_module(f"keras.applications.{module}")
    model = getattr(mod, constructor)(include_top=False, weights=weights, input_shape=input_shape, pooling="avg")
    return model, mod.preprocess_input


@register_backbone(
    dim=2048, default_size=224, preprocessing="caffe",
    description="ResNet50 (ImageNet), global average pool", blocks=r"^(conv\d_block\d+)_",
)
def resnet50(weights, input_shape):
    return _app("resnet50", "ResNet50", weights, input_shape)


@register_backbone(
    dim=512, default_size=224, preprocessing="caffe",
    description="VGG16 (ImageNet), global average pool of block5", blocks=r"^(block\d)_",
)
def vgg16(weights, input_shape):
    return _app("vgg16", "VGG16", weights, input_shape)


@register_backbone(
    dim=2048, default_size=299, min_size=75, preprocessing="tf",
    description="InceptionV3 (ImageNet), global average pool", blocks=r"^(mixed\d+)$", block_marks="end",
)
def inceptionv3(weights, input_shape):
    return _app("inception_v3", "InceptionV3", weights, input_shape)


@register_backbone(
    dim=1280, default_size=224, preprocessing="tf",
    description="MobileNetV2 1.0 (ImageNet), fast on CPU", blocks=r"^(expanded_conv|block_\d+|Conv_1)(_|$)",
)
def mobilenetv2(weights, input_shape):
    return _app("mobilenet_v2", "MobileNetV2", weights, input_shape)


@register_backbone(
    dim=1280, default_size=224, preprocessing="none",
    description="EfficientNetB0 (ImageNet), rescaling built into the model", blocks=r"^(block\d[a-z]|top)_",
)
def efficientnetb0(weights, input_shape):
    return _app("efficientnet", "EfficientNetB0", weights, input_shape)


# --- this decade's CNNs: ConvNeXt (2022) and EfficientNetV2 (2021). In Keras 3 both carry their input
# scaling inside the model (``include_preprocessing=True``, the default), so RGB 0..255 floats go in
# unchanged (preprocessing "none") and their ``preprocess_input`` is the identity.


@register_backbone(
    dim=768, default_size=224, preprocessing="none",
    description="ConvNeXt-T (ImageNet-1k), global average pool + LayerNorm; ImageNet mean/std in the model",
)
def convnext_tiny(weights, input_shape):
    return _app("convnext", "ConvNeXtTiny", weights, input_shape)


@register_backbone(
    dim=768, default_size=224, preprocessing="none",
    description="ConvNeXt-S (ImageNet-1k), global average pool + LayerNorm; ImageNet mean/std in the model",
)
def convnext_small(weights, input_shape):
    return _app("convnext", "ConvNeXtSmall", weights, input_shape)


@register_backbone(
    dim=1024, default_size=224, preprocessing="none",
    description="ConvNeXt-B (ImageNet-1k), global average pool + LayerNorm; ImageNet mean/std in the model",
)
def convnext_base(weights, input_shape):
    return _app("convnext", "ConvNeXtBase", weights, input_shape)


@register_backbone(
    dim=1280, default_size=224, preprocessing="none",
    description="EfficientNetV2-B0 (ImageNet), global average pool; /255 + ImageNet mean/std in the model",
)
def efficientnetv2b0(weights, input_shape):
    return _app("efficientnet_v2", "EfficientNetV2B0", weights, input_shape)


@register_backbone(
    dim=1280, default_size=384, preprocessing="none",
    description="EfficientNetV2-S (ImageNet), global average pool; scaling to [-1, 1] in the model",
)
def efficientnetv2s(weights, input_shape):
    return _app("efficientnet_v2", "EfficientNetV2S", weights, input_shape)


@register_backbone(
    dim=1280, default_size=480, preprocessing="none",
    description="EfficientNetV2-M (ImageNet), global average pool; scaling to [-1, 1] in the model",
)
def efficientnetv2m(weights, input_shape):
    return _app("efficientnet_v2", "EfficientNetV2M", weights, input_shape)
