"""kt.fold_batch_norm: the folded model computes the inference-mode original."""

import numpy as np
import pytest

import keras
from keras import layers

import keras_taylor as kt
from keras_taylor.reference_models import resnet20
from helpers import (
    assert_outputs_close,
    has_keras_taylor_layers,
    head,
    inputs_like,
    randomize_weights,
)


def _count(model, cls):
    return sum(isinstance(layer, cls) for layer in model.layers)


def _assert_folds(model, folded_expected, rel=1e-5):
    """Folds `model` and checks outputs, and how many normalizations went."""
    randomize_weights(model)
    x = inputs_like(model, batch=3)
    folded = kt.fold_batch_norm(model)
    assert_outputs_close(model(x, training=False), folded(x), rel=rel, what="folded")
    bn = keras.layers.BatchNormalization
    assert _count(model, bn) - _count(folded, bn) == folded_expected
    return folded


def _single(producer, input_shape, **bn_kwargs):
    inputs = keras.Input(input_shape)
    y = producer(inputs)
    y = layers.BatchNormalization(**bn_kwargs)(y)
    return keras.Model(inputs, layers.ReLU()(y))


PRODUCERS = {
    "conv1d": (lambda: layers.Conv1D(5, 3), (9, 3)),
    "conv2d_no_bias": (lambda: layers.Conv2D(5, 3, use_bias=False), (7, 7, 3)),
    "conv2d_grouped": (lambda: layers.Conv2D(6, 3, groups=2), (7, 7, 4)),
    "conv3d": (lambda: layers.Conv3D(4, 2), (5, 5, 5, 2)),
    "conv2d_transpose": (lambda: layers.Conv2DTranspose(5, 3, strides=2), (4, 4, 3)),
    "depthwise_multiplier_2": (
        lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 3)
    ),
    "separable_multiplier_2": (
        lambda: layers.SeparableConv2D(5, 3, depth_multiplier=2, use_bias=False),
        (7, 7, 3),
    ),
    "dense": (lambda: layers.Dense(6), (4,)),
    "dense_on_sequence": (lambda: layers.Dense(6, use_bias=False), (5, 4)),
}


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_every_registered_producer_absorbs_the_normalization(name):
    make, shape = PRODUCERS[name]
    folded = _assert_folds(_single(make(), shape), folded_expected=1)
    producer = folded.layers[1]
    assert producer.use_bias and producer.bias is not None


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
def test_normalization_without_gamma_or_beta_folds(center, scale):
    model = _single(layers.Conv2D(4, 3), (6, 6, 2), center=center, scale=scale)
    _assert_folds(model, folded_expected=1)


def test_fused_batch_normalization_folds_like_the_keras_layer():
    inputs = keras.Input((6, 6, 2))
    y = kt.FusedBatchNormalization(epsilon=1e-3)(layers.Conv2D(4, 3)(inputs))
    folded = _assert_folds(keras.Model(inputs, y), folded_expected=1)
    assert not has_keras_taylor_layers(folded)


def test_normalizations_that_cannot_fold_are_kept_and_still_correct():
    inputs = keras.Input((8, 8, 3))
    relu_conv = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    after_activation = layers.BatchNormalization(name="after_relu")(relu_conv)
    read_twice = layers.Conv2D(4, 3, padding="same", name="read_twice")(after_activation)
    bn_of_shared_tensor = layers.BatchNormalization(name="shared_input")(read_twice)
    merged = layers.Add()([bn_of_shared_tensor, read_twice])
    after_add = layers.BatchNormalization(name="after_add")(merged)
    foldable = layers.Conv2D(4, 1, name="foldable")(after_add)
    out = layers.BatchNormalization(name="folded")(foldable)
    model = keras.Model(inputs, out)
    folded = _assert_folds(model, folded_expected=1)
    kept = {l.name for l in folded.layers if isinstance(l, layers.BatchNormalization)}
    assert kept == {"after_relu", "shared_input", "after_add"}


def test_normalization_over_another_axis_is_kept():
    inputs = keras.Input((6, 6, 4))
    y = layers.Conv2D(4, 1)(inputs)
    y = layers.BatchNormalization(axis=1)(y)
    _assert_folds(keras.Model(inputs, y), folded_expected=0)


def test_shared_convolution_is_left_alone():
    conv = layers.Conv2D(3, 1)
    a, b = keras.Input((5, 5, 2)), keras.Input((5, 5, 2))
    ya = layers.BatchNormalization()(conv(a))
    yb = conv(b)
    _assert_folds(keras.Model([a, b], [ya, yb]), folded_expected=0)


def test_normalization_that_is_a_model_output_reader_of_an_output_is_kept():
    inputs = keras.Input((5, 5, 2))
    conv = layers.Conv2D(3, 1)(inputs)
    bn = layers.BatchNormalization()(conv)
    _assert_folds(keras.Model(inputs, [conv, bn]), folded_expected=0)


def test_nested_model_is_folded_and_flattened():
    inner_in = keras.Input((6, 6, 3))
    inner = keras.Model(
        inner_in, layers.BatchNormalization()(layers.Conv2D(4, 3)(inner_in)), name="inner"
    )
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(inner(inputs)))
    randomize_weights(model)
    x = inputs_like(model)
    folded = kt.fold_batch_norm(model)
    assert_outputs_close(model(x, training=False), folded(x), what="folded")
    assert not any(
        isinstance(l, layers.BatchNormalization) for l in folded.layers
    )


def test_model_passed_in_is_not_changed():
    model = _single(layers.Conv2D(4, 3, use_bias=False), (6, 6, 2))
    randomize_weights(model)
    before = [w.copy() for w in model.get_weights()]
    names = [l.name for l in model.layers]
    kt.fold_batch_norm(model)
    assert [l.name for l in model.layers] == names
    assert not model.layers[1].use_bias
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_prunable_model_and_subclassed_model_are_refused_with_what_to_do():
    inputs = keras.Input((6, 6, 2))
    features = _single(layers.Conv2D(4, 3), (6, 6, 2))(inputs)
    model = keras.Model(inputs, head(features))
    with pytest.raises(kt.UnsupportedModelError, match="strip_pruning"):
        kt.fold_batch_norm(kt.TaylorPrunableModel(model))

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(kt.UnsupportedModelError, match="fold_batch_norm.*subclassed"):
        kt.fold_batch_norm(Sub())


def test_pruned_resnet20_strips_folds_saves_and_keeps_its_outputs(tmp_path):
    model = resnet20(input_shape=(16, 16, 3), widths=(8, 16, 16), units=1)
    randomize_weights(model)
    pm = kt.TaylorPrunableModel(model, criterion="l1")
    pm.update_prunables(None, learnables_reduction=0.4)
    stripped = kt.strip_pruning(pm)
    stripped.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    folded = kt.fold_batch_norm(stripped)
    x = inputs_like(model, batch=4)
    assert_outputs_close(stripped(x, training=False), folded(x), rel=1e-4, what="folded")
    bn = layers.BatchNormalization
    # Every convolution in this ResNet is followed by its own normalization.
    assert _count(folded, bn) == 0 < _count(stripped, bn)
    assert folded.count_params() < stripped.count_params()
    assert folded.compiled
    folded.evaluate(x, np.zeros(4, "int32"), verbose=0)
    path = tmp_path / "folded.keras"
    folded.save(path)
    loaded = keras.saving.load_model(path)
    assert_outputs_close(folded(x), loaded(x), what="loaded")


@pytest.fixture
def float64():
    """Random-weight MobileNetV2 is chaotic in float32 (ReLU6 clipping turns
    1e-7 rounding into 10% at the logits), so the exact check runs in float64."""
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(previous)


def test_pruned_mobilenetv2_folds_every_normalization_with_the_same_logits(float64):
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(64, 64, 3), alpha=0.35, classifier_activation=None
    )
    randomize_weights(model)
    pm = kt.TaylorPrunableModel(model, criterion="l1", normalize=True)
    pm.update_prunables(max_to_prune=pm.num_prunables // 3)
    stripped = kt.strip_pruning(pm)
    folded = kt.fold_batch_norm(stripped)
    x = inputs_like(model, batch=2)
    assert_outputs_close(stripped(x, training=False), folded(x), rel=1e-9, what="folded")
    assert _count(stripped, layers.BatchNormalization) == 52
    assert _count(folded, layers.BatchNormalization) == 0
