"""The networks of MATLAB's Taylor-pruning examples, rebuilt in Keras.

Used by the demo, the tutorials, the tests and the benchmarks, so the
figures they report refer to the same architectures.
"""

import keras

L = keras.layers


def digits_cnn(input_shape=(28, 28, 1), num_classes=10, filters=20, name="digits_cnn"):
    """MATLAB's digits CNN: three conv-BN-ReLU blocks of 20 filters, then Dense.

    The first convolution is 5x5 "valid" (28x28 -> 24x24), the others 3x3
    "same", as in "Prune Image Classification Network Using Taylor Scores".

    Example:

    >>> model = digits_cnn()
    >>> model.count_params() > 100_000
    True
    """
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for i, size in enumerate((5, 3, 3), start=1):
        x = L.Conv2D(filters, size, padding="valid" if i == 1 else "same", name=f"conv{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet20(input_shape=(32, 32, 3), num_classes=10, widths=(16, 32, 64), units=3, name="resnet20"):
    """The "CIFARNet twin": a ResNet-20 like MATLAB's accuracy-requirement network.

    Three stages of `units` residual units (widths 16/32/64), projection
    shortcuts (1x1 conv + BN) where the width or stride changes, global
    average pooling and a softmax classifier; about 273k learnables with the
    defaults, the size of the network in MATLAB's example. Layer names follow
    MATLAB's (S1U1_conv1, ..., skipConv2, fcFinal).

    Example:

    >>> resnet20().count_params() > 270_000
    True
    """
    inputs = keras.Input(input_shape, name="input")
    x = L.Conv2D(widths[0], 3, padding="same", use_bias=False, name="convInp")(inputs)
    x = L.BatchNormalization(momentum=0.9, name="BNInp")(x)
    x = L.ReLU(name="reluInp")(x)
    for s, width in enumerate(widths, start=1):
        for u in range(1, units + 1):
            stride = 2 if (s > 1 and u == 1) else 1
            tag = f"S{s}U{u}"
            y = L.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"{tag}_conv1")(x)
            y = L.BatchNormalization(momentum=0.9, name=f"{tag}_BN1")(y)
            y = L.ReLU(name=f"{tag}_relu1")(y)
            y = L.Conv2D(width, 3, padding="same", use_bias=False, name=f"{tag}_conv2")(y)
            y = L.BatchNormalization(momentum=0.9, name=f"{tag}_BN2")(y)
            if stride != 1 or x.shape[-1] != width:
                x = L.Conv2D(width, 1, strides=stride, use_bias=False, name=f"skipConv{s}")(x)
                x = L.BatchNormalization(momentum=0.9, name=f"skipBN{s}")(x)
            x = L.Add(name=f"add{s}{u}")([x, y])
            x = L.ReLU(name=f"relu{s}{u}")(x)
    x = L.GlobalAveragePooling2D(name="globalPool")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="fcFinal")(x)
    return keras.Model(inputs, outputs, name=name)
