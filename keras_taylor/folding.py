"""`fold_batch_norm`: batch normalization merged into the layer before it.

In inference mode a `BatchNormalization` is a per-channel `scale * y + shift`.
When `y` is the linear output of a convolution (or Dense) that nothing else
reads, the scale can go into the kernel and the shift into the bias, and the
normalization layer disappears. TFLite's converter does this on its own; the
Keras runtime does not, and on a CPU a small CNN spends much of its forward
pass in those elementwise normalization ops, which pruning does not shrink
as much as the convolutions.
"""

import numpy as np

import keras

from keras_taylor import handlers
from keras_taylor.errors import UnsupportedModelError
from keras_taylor.graph import Rebuild, read_model, replay
from keras_taylor.model import TaylorPrunableModel
from keras_taylor.surgery import compile_like

# Weights a foldable layer may own; anything else (LoRA factors, int8 scales)
# changes how the output is computed, so such a layer is left alone.
_FOLDABLE_WEIGHTS = {"kernel", "bias", "depthwise_kernel", "pointwise_kernel"}


def _calls_per_layer(flat):
    counts = {}
    for node in flat.nodes:
        counts[id(node.layer)] = counts.get(id(node.layer), 0) + 1
    return counts


def _readers_per_tensor(flat):
    readers = {t: 0 for t in flat.tensors}
    for node in flat.nodes:
        for t in node.inputs:
            readers[t] += 1
    for t in flat.outputs:
        readers[t] += 1
    return readers


def _foldable_producer(node):
    """The producer's `output_axes`, or None when a normalization cannot go in."""
    if node.config.get("activation") not in (None, "linear"):
        return None
    names = {w.name for w in node.layer.weights}
    if not names <= _FOLDABLE_WEIGHTS:
        return None
    if any(not keras.backend.is_float_dtype(w.dtype) for w in node.layer.weights):
        return None
    return handlers.get_handler(node.layer).output_axes(node)


def find_foldable_pairs(flat):
    """{producer node index: batch-norm node} for every pair that can merge."""
    producer_of = {}
    for node in flat.nodes:
        for t in node.outputs:
            producer_of[t] = node
    calls = _calls_per_layer(flat)
    readers = _readers_per_tensor(flat)
    pairs = {}
    for node in flat.nodes:
        if not isinstance(node.layer, keras.layers.BatchNormalization):
            continue
        if len(node.inputs) != 1 or not handlers.acts_on_last_axis(node):
            continue
        producer = producer_of.get(node.inputs[0])
        if (
            producer is None
            or len(producer.outputs) != 1
            or readers[node.inputs[0]] != 1
            or calls[id(node.layer)] != 1
            or calls[id(producer.layer)] != 1
            or _foldable_producer(producer) is None
        ):
            continue
        pairs[producer.index] = node
    return pairs


def _affine(bn):
    """The inference-mode (scale, shift) of batch normalization `bn`."""
    values = {w.name: np.asarray(w.numpy(), dtype=np.float64) for w in bn.weights}
    mean, variance = values["moving_mean"], values["moving_variance"]
    gamma = values.get("gamma", np.ones_like(mean))
    beta = values.get("beta", np.zeros_like(mean))
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _scale_axes(value, axes, scale):
    """Multiplies `value` by `scale` along `axes` flattened in C order."""
    axes = [a % value.ndim for a in axes]
    moved = np.moveaxis(value, axes, range(value.ndim - len(axes), value.ndim))
    lead = moved.shape[: value.ndim - len(axes)]
    scaled = (moved.reshape(lead + (-1,)) * scale).reshape(moved.shape)
    return np.moveaxis(scaled, range(value.ndim - len(axes), value.ndim), axes)


class _Fold(Rebuild):
    """Drops folded normalizations; producers absorb them and gain a bias."""

    def __init__(self, pairs):
        self.pairs = pairs
        self.folded = {bn.index for bn in pairs.values()}

    def skip(self, node):
        return node.index in self.folded

    def config(self, node):
        if node.index in self.pairs:
            return dict(node.config, use_bias=True)
        return node.config

    def weights(self, node):
        if node.index not in self.pairs:
            return node.layer.get_weights()
        scale, shift = _affine(self.pairs[node.index].layer)
        axes = _foldable_producer(node)
        out, bias = [], np.zeros_like(scale)
        for variable in node.layer.weights:
            value = np.asarray(variable.numpy(), dtype=np.float64)
            if variable.name == "bias":
                bias = value
                continue
            if variable.name in axes:
                value = _scale_axes(value, axes[variable.name], scale)
            out.append(value.astype(variable.dtype))
        # Keras layers create their bias last, so it goes at the end.
        dtype = node.layer.weights[0].dtype
        out.append((bias * scale + shift).astype(dtype))
        return out


def fold_batch_norm(model):
    """Returns a copy of `model` with batch normalization folded into convs.

    Every `BatchNormalization` that directly follows a convolution (Conv1D/2D/
    3D, their transposed, depthwise and separable forms) or a Dense layer with
    a linear activation, whose output nothing else reads, is merged into that
    layer's kernel and bias. The copy computes what `model` computes in
    inference mode (to float rounding) with fewer ops, which is what a model
    served by the Keras or TensorFlow runtime wants; TFLite conversion does
    the same folding by itself. The folded model is for inference: training it
    would no longer normalize batches. Normalizations that cannot be folded
    (after a ReLU, an Add, a shared layer, ...) are kept. `model` is not
    modified.

    Args:
        model: a functional or Sequential `keras.Model`, for instance the
            result of `kt.strip_pruning`.

    Returns:
        A functional `keras.Model`, compiled like `model` if it was compiled.

    Example:

    >>> import keras, numpy as np, keras_taylor as kt
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> outputs = keras.layers.ReLU()(x)
    >>> model = keras.Model(inputs, outputs)
    >>> folded = kt.fold_batch_norm(model)
    >>> [type(layer).__name__ for layer in folded.layers]
    ['InputLayer', 'Conv2D', 'ReLU']
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    >>> bool(np.allclose(folded(x), model(x, training=False), atol=1e-5))
    True
    """
    if isinstance(model, TaylorPrunableModel):
        raise UnsupportedModelError(
            f"fold_batch_norm got the TaylorPrunableModel '{model.name}', which "
            "still trains its batch normalization. Call kt.strip_pruning(model) "
            "first and fold the stripped model."
        )
    flat = read_model(model, where="fold_batch_norm")
    folded = replay(flat, _Fold(find_foldable_pairs(flat)), name=model.name)
    return compile_like(folded, model)
