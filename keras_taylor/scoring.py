"""The arithmetic behind the importance criteria (see `keras_taylor.importance`).

* Taylor (Molchanov et al. 2017): for each sample, the first-order change
  of the loss when a channel is zeroed, |sum over positions of activation x
  gradient| (or the mean over positions, the paper's form), summed over every
  place the channel group enters a consumer, then averaged over samples.
  `taylor_batch_scores` computes one batch's part inside the training step.
* L1 (Li et al. 2017): `l1_scores` sums the absolute kernel weights that make
  each channel group.

Normalisation per layer lives with the pruning decision (`pruner.py`).
"""

import numpy as np
import tensorflow as tf

from keras_taylor.errors import InvalidArgumentError
from keras_taylor.pruner import NORMALIZERS, normalize_per_layer  # noqa: F401  (kept importable here)

SPATIAL_REDUCTIONS = ("mean", "sum")


def as_normalizer(normalize):
    """The norm a `normalize=` argument names: None (raw scores), `"l2"` (also True) or `"mean"`."""
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return "l2"
    if normalize in NORMALIZERS:
        return normalize
    raise InvalidArgumentError(f"normalize must be False, True, 'l2' or 'mean', got {normalize!r}")


def tap_layout(mask_units, tap_shapes, spatial_reduction):
    """Per mask point: (unit of each channel, weight of each channel).

    With ``"mean"`` the weight is 1 / (number of positions a unit occupies in
    that tensor), so a channel repeated by Flatten is averaged like a spatial
    map; with ``"sum"`` every weight is 1.
    """
    layout = {}
    for name, units in mask_units.items():
        units = np.asarray(units, dtype=np.int64)
        if spatial_reduction == "sum":
            weight = np.ones(len(units), dtype=np.float32)
        else:
            shape = tap_shapes[name]
            positions = int(np.prod([d or 1 for d in shape[1:-1]])) if len(shape) > 2 else 1
            _, inverse, counts = np.unique(units, return_inverse=True, return_counts=True)
            weight = (1.0 / (positions * counts[inverse])).astype(np.float32)
        layout[name] = (units.astype(np.int32), weight)
    return layout


def _position_sums(tap, grad):
    """Per-sample, per-channel sum over positions of tap x grad."""
    product = tf.cast(tap, tf.float32) * tf.cast(grad, tf.float32)
    rank = len(product.shape)
    if rank > 2:
        product = tf.reduce_sum(product, axis=list(range(1, rank - 1)))
    return product


def taylor_batch_scores(taps, tap_grads, layout, num_units, sample_scale):
    """Sum over the batch of |per-sample Taylor contribution|, per channel group.

    Args:
        taps: mask name -> mask output tensor (batch, ..., channels).
        tap_grads: mask name -> gradient of the loss with respect to it.
        layout: from `tap_layout`.
        num_units: number of channel groups.
        sample_scale: factor turning the gradient of the batch-mean loss into
            per-sample gradients (the global batch size).

    Returns:
        float32 tensor of shape (num_units,).
    """
    parts, segments = [], []
    for name, tap in taps.items():
        grad = tap_grads.get(name)
        if grad is None or name not in layout:
            continue
        product = _position_sums(tap, grad)
        units, weight = layout[name]
        parts.append(tf.transpose(product * weight))
        segments.append(units)
    if not parts:
        return tf.zeros((num_units,), tf.float32)
    per_unit = tf.math.unsorted_segment_sum(
        tf.concat(parts, axis=0), np.concatenate(segments), num_units
    )
    return tf.reduce_sum(tf.abs(per_unit), axis=1) * sample_scale


def l1_scores(channel_graph, layer_kernels, num_units):
    """Per channel group, the L1 norm of every kernel slice that produces it.

    `layer_kernels` maps layer name -> (kernel array, output axis).
    """
    scores = np.zeros(num_units, dtype=np.float64)
    for name, units in channel_graph.layer_units.items():
        if name not in layer_kernels:
            continue
        kernel, out_axis = layer_kernels[name]
        kernel = np.moveaxis(np.abs(np.asarray(kernel, np.float64)), out_axis, -1)
        per_channel = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
        if len(per_channel) == len(units):
            np.add.at(scores, units, per_channel)
    return scores
