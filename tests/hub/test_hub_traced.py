"""keras-hub models whose convolutions sit inside custom block layers.

MobileNetV3 (`DepthwiseConvBlock`, `InvertedResidualBlock`), EfficientNetV2
(`FusedMBConvBlock`, `MBConvBlock`), HGNetV2 (`HGNetV2Encoder` holding `HGNetV2Stage`s) and MiT
(`OverlappingPatchingAndEmbedding`, `HierarchicalTransformerEncoder`) build
their convolutions inside keras-hub layers keras-taylor has no handler for;
they are read by tracing those layers' `call`. Each model is built from its
real preset configuration without downloading anything (keras-hub's own timm
converters give the configurations; MiT's is the SegFormer-B0 one of the
`mit_b0_ade20k_512` preset), at a small input size, with random batch-norm scales and
offsets and moving statistics taken from one batch (so the outputs are of
order one: fully random weights overflow these deep models, and the initial
ones shrink their outputs towards zero), and then: wrapped, pruned by >= 20% of its learnables (L1 criterion), stripped,
checked for masked == stripped outputs (<= 1e-5 relative), and the stripped
model saved to `.keras` and reloaded with `safe_mode=True`.

The builders are `hub_models`' (the keras-hub table of docs/zoo.md builds
the same models). The small models run by default; the larger ones are
marked `slow`.
"""

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
hub_models = pytest.importorskip("hub_models")

import keras  # noqa: E402

import keras_taylor as kt  # noqa: E402
from keras_taylor._compat import all_sublayers  # noqa: E402
from helpers import assert_outputs_close  # noqa: E402

IMAGE_SHAPE = (64, 64, 3)
GOAL = 0.3  # requested fraction of the learnables; at least MIN_REDUCTION must go
MIN_REDUCTION = 0.2


def _batch_norms(model):
    return [
        layer for layer in all_sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def calibrate(model, x, seed=0):
    """Random BN scales and offsets, then moving statistics of `x`'s batch."""
    rng = np.random.default_rng(seed)
    norms = _batch_norms(model)
    for norm in norms:
        if norm.scale:
            norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape).astype("float32"))
        if norm.center:
            norm.beta.assign(rng.normal(0.0, 0.3, norm.beta.shape).astype("float32"))
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 0.0  # one training call sets the moving statistics
    model(x, training=True)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def prune_strip_reload(model, tmp_path, goal=GOAL, **options):
    """Wraps, prunes, strips, compares and reloads `model`; returns numbers."""
    x = np.random.default_rng(0).normal(size=(4,) + IMAGE_SHAPE).astype("float32")
    calibrate(model, x)
    expected = model(x, training=False)
    pm = kt.TaylorPrunableModel(model, criterion="l1", **options)
    pm.update_prunables(None, goal=goal)
    stripped = kt.strip_pruning(pm)
    masked, small = pm(x, training=False), stripped(x, training=False)
    assert_outputs_close(masked, small, what="stripped vs masked")
    path = tmp_path / "stripped.keras"
    stripped.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_close(stripped(x, training=False), reloaded(x, training=False), what="reloaded")
    assert_outputs_close(expected, model(x, training=False), rel=0, what="model passed in")
    real = 1 - stripped.count_params() / model.count_params()
    relative = max(
        float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
        for a, b in zip(keras.tree.flatten(masked), keras.tree.flatten(small))
    )
    assert relative <= 1e-5, f"stripped vs masked: {relative:.2g} of the output scale"
    return pm.learnables_reduction, real, stripped, relative


#: name -> (builder, a block class it builds its convolutions in, options, marks);
#: the builders are `hub_models`' (the keras-hub table's too), called with
#: the input side.
#: MiT is a transformer: its convolutions alone (patch embeddings, the
#: depthwise one of each MixFFN, all coupled to Dense layers) stay under 20%
#: (`DropPath`, which decides in Python on `training`, stays opaque and blocks
#: its residual stream), so its Dense units are pruned too.
CASES = {
    "MobileNetV3Small050": (hub_models.mobilenet_v3_small, "DepthwiseConvBlock", {}, ()),
    "HGNetV2B4": (hub_models.hgnetv2_b4, "HGNetV2Encoder", {}, (pytest.mark.slow,)),
    "EfficientNetV2RwT": (hub_models.efficientnet_v2_rw_t, "FusedMBConvBlock", {}, (pytest.mark.slow,)),
    "MiTB0": (hub_models.mit_b0, "HierarchicalTransformerEncoder", {"prune_dense": True}, (pytest.mark.slow,)),
}


@pytest.mark.parametrize(
    "build, block, options",
    [pytest.param(b, k, o, marks=m, id=name) for name, (b, k, o, m) in CASES.items()],
)
def test_custom_blocks_are_traced_pruned_and_stripped(build, block, options, tmp_path):
    model = build(IMAGE_SHAPE[0])
    assert block in {type(layer).__name__ for layer in model.layers}
    accounted, real, stripped, _ = prune_strip_reload(model, tmp_path, **options)
    assert accounted >= MIN_REDUCTION
    assert real >= MIN_REDUCTION - 0.02, f"count_params fell by {real:.1%} only"
    # The block was replaced by its inner layers.
    assert block not in {type(layer).__name__ for layer in stripped.layers}
