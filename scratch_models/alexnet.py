"""AlexNet as in "Deep Learning for Computer Vision with Python", Practitioner Bundle.

The book's variant (Kaggle Dogs vs. Cats chapter) places BatchNormalization
*after* the ReLU and adds dropout after every pooling layer::

    block1  CONV 96 11x11/4 (same) => RELU => BN => POOL 3x3/2 => DROPOUT 0.25
    block2  CONV 256 5x5 (same)    => RELU => BN => POOL 3x3/2 => DROPOUT 0.25
    block3  (CONV 3x3 (same) => RELU => BN) x [384, 384, 256]
                                           => POOL 3x3/2 => DROPOUT 0.25
    flatten
    fc1     DENSE 4096 => RELU => BN => DROPOUT 0.5
    fc2     DENSE 4096 => RELU => BN => DROPOUT 0.5
    predictions  DENSE classes, softmax (float32)

Every kernel (convs and all three dense layers) carries an L2 penalty ``reg``
(default 2e-4, the book's value).  58,327,810 parameters at 227x227x3 with 2
classes (the book's setting).

Layer names: ``block{1,2}_{conv,relu,bn,pool,dropout}``,
``block3_{conv,relu,bn}{1,2,3}``, ``block3_{pool,dropout}``, ``flatten``,
``fc{1,2}``, ``fc{1,2}_{relu,bn,dropout}``, ``predictions``.

Feature layer: ``fc2_dropout`` (4096-d, identical to ``fc2_bn`` at inference),
the output feeding ``predictions``.

Pooling uses "valid" padding and the head uses Flatten, so the input size is
fixed per model and must be at least 57x57.

Importing this module does not import Keras; building the model does.
"""

from __future__ import annotations

from .registry import register_model

INPUT_SIZE = 227
DEFAULT_CLASSES = 2
MIN_INPUT_SIZE = 57
FEATURE_LAYER = "fc2_dropout"


def _conv_relu_bn(x, filters: int, kernel_size: int, *, strides: int, reg, name: str, idx: str):
    """AlexNet conv unit, CONV => RELU => BN (the book's order), all padding "same"."""
    from keras import layers

    from ._blocks import channel_axis, l2

    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_regularizer=l2(reg),
        name=f"{name}_conv{idx}",
    )(x)
    x = layers.Activation("relu", name=f"{name}_relu{idx}")(x)
    return layers.BatchNormalization(axis=channel_axis(), name=f"{name}_bn{idx}")(x)


def _pool_dropout(x, *, name: str):
    from keras import layers

    x = layers.MaxPooling2D(pool_size=3, strides=2, name=f"{name}_pool")(x)
    return layers.Dropout(0.25, name=f"{name}_dropout")(x)


def _dense_relu_bn_dropout(x, units: int, *, reg, name: str):
    from keras import layers

    from ._blocks import l2

    x = layers.Dense(units, kernel_regularizer=l2(reg), name=name)(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Dropout(0.5, name=f"{name}_dropout")(x)


def _build_alexnet(input_shape, classes, *, reg: float, name: str):
    import keras
    from keras import layers

    from ._blocks import check_classes, check_input_shape, classifier, model_input

    shape = check_input_shape(input_shape, model=name, default=INPUT_SIZE, min_size=MIN_INPUT_SIZE)
    classes = check_classes(classes, model=name, default=DEFAULT_CLASSES)

    inputs = model_input(shape)
    x = _conv_relu_bn(inputs, 96, 11, strides=4, reg=reg, name="block1", idx="")
    x = _pool_dropout(x, name="block1")
    x = _conv_relu_bn(x, 256, 5, strides=1, reg=reg, name="block2", idx="")
    x = _pool_dropout(x, name="block2")
    for i, filters in enumerate((384, 384, 256), start=1):
        x = _conv_relu_bn(x, filters, 3, strides=1, reg=reg, name="block3", idx=str(i))
    x = _pool_dropout(x, name="block3")

    x = layers.Flatten(name="flatten")(x)
    x = _dense_relu_bn_dropout(x, 4096, reg=reg, name="fc1")
    x = _dense_relu_bn_dropout(x, 4096, reg=reg, name="fc2")
    outputs = classifier(x, classes, reg=reg)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    description="AlexNet (book variant: ReLU before BN, dropout after each pool, L2 on all kernels)",
    input_size=INPUT_SIZE,
    default_classes=DEFAULT_CLASSES,
    feature_layer=FEATURE_LAYER,
    min_input_size=MIN_INPUT_SIZE,
    feature_dim=4096,
    params=58_327_810,
)
def alexnet(
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    *,
    reg: float = 2e-4,
    name: str = "alexnet",
):
    """AlexNet; ``input_shape`` None -> 227x227x3, ``classes`` None -> 2."""
    return _build_alexnet(input_shape, classes, reg=reg, name=name)
