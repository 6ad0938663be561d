"""keras-hub models built from their real preset configurations, with no download.

Each entry of `MODELS` is one line: a name, a builder, the input side, the
loss the model is scored with, whether the test is `slow`, and (where one is
known) the parameter count keras-hub's preset metadata states at the preset's
own size, which `test_preset_parameter_counts` checks so that the config is
the preset's and not a look-alike.

Where the configs come from (keras-hub 0.32, no network):
- backbones keras-hub converts from timm (`ResNetV2`, `CSPNet`, `DenseNet`,
  and the ResNet50 v1 encoder of DeepLabV3 / RetinaNet): the converter's own
  `convert_backbone_config({"architecture": ...})`, the function keras-hub
  calls when it loads the timm checkpoint;
- task models whose presets exist only on Kaggle (DeepLabV3, SegFormer,
  RetinaNet): the constructor arguments of the preset named in the entry,
  checked by the preset metadata's parameter count.

- backbones whose convolutions sit inside keras-hub block layers, opened by
  tracing (MobileNetV3, EfficientNetV2, HGNetV2: the timm converters' configs
  as above; MiT: `mit_b0_ade20k_512`'s constructor arguments): their builders
  here serve both `tests/hub/test_hub_traced.py` (its own protocol) and
  `MODELS` (the table's).

`tests/hub/test_keras_hub.py` and `benchmarks/hub_table.py` run every
`HubModel` of `MODELS`.
"""

import dataclasses

import pytest

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed (pip install -e '.[hub]')")

import keras  # noqa: E402


def timm_config(converter, architecture, **extra):
    """The keras-hub backbone config keras-hub makes for a timm `architecture`
    (`extra`: more keys of the timm config, e.g. `pretrained_cfg`)."""
    import importlib

    module = importlib.import_module(f"keras_hub.src.utils.timm.convert_{converter}")
    return module.convert_backbone_config(dict(architecture=architecture, **extra))


def resnet(architecture, size):
    return keras_hub.models.ResNetBackbone(
        **timm_config("resnet", architecture), image_shape=(size, size, 3)
    )


def cspnet(architecture, size):
    return keras_hub.models.CSPNetBackbone(
        **timm_config("cspnet", architecture), image_shape=(size, size, 3)
    )


def densenet(architecture, size):
    return keras_hub.models.DenseNetBackbone(
        **timm_config("densenet", architecture), image_shape=(size, size, 3)
    )


def resnet_classifier(architecture, size, classes=1000):
    """`ResNetImageClassifier` of a timm ResNet (`resnet_18_imagenet` and kin)."""
    backbone = resnet(architecture, size)
    return keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=classes)


def deeplab_v3_plus(size, classes=21):
    """`deeplab_v3_plus_resnet50_pascalvoc`: ResNet50 (v1) encoder, ASPP on P5, decoder on P2."""
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=resnet("resnet50", size),
        spatial_pyramid_pooling_key="P5",
        upsampling_size=8,
        dilation_rates=[6, 12, 18],
        low_level_feature_key="P2",
        projection_filters=48,
        image_shape=(size, size, 3),
    )
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=classes)


def mit_b0(size):
    """The MiT-B0 encoder of `segformer_b0_ade20k_512` (`mit_b0_ade20k_512`)."""
    return keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2],
        num_layers=4,
        layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1],
        max_drop_path_rate=0.1,
        layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2],
        hidden_dims=[32, 64, 160, 256],
        image_shape=(size, size, 3),
    )


def mobilenet_v3_small(size):
    """`mobilenet_v3_small_050_imagenet`'s backbone (`DepthwiseConvBlock`, `InvertedResidualBlock`)."""
    config = timm_config("mobilenet", "mobilenetv3_small_050")
    return keras_hub.models.MobileNetBackbone(image_shape=(size, size, 3), **config)


def efficientnet_v2_rw_t(size):
    """`efficientnet2_rw_t_ra2_imagenet`'s backbone (`FusedMBConvBlock` + `MBConvBlock`)."""
    config = timm_config("efficientnet", "efficientnet2_rw_t")
    return keras_hub.models.EfficientNetBackbone(image_shape=(size, size, 3), **config)


def hgnetv2_b4(size):
    """`hgnetv2_b4_ssld_stage2_ft_in1k`'s backbone (`HGNetV2Encoder` holding `HGNetV2Stage`s)."""
    config = timm_config("hgnetv2", "hgnetv2_b4", pretrained_cfg={"tag": "ssld_stage2_ft_in1k"})
    return keras_hub.models.HGNetV2Backbone(image_shape=(size, size, 3), **config)


def segformer_b0(size, classes=150):
    """`segformer_b0_ade20k_512`: MiT-B0, 256 projection filters, 150 ADE20k classes."""
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=mit_b0(size), projection_filters=256)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=classes)


def retinanet_resnet50_fpn(size, classes=91):
    """`retinanet_resnet50_fpn_coco`: ResNet50 (v1), FPN levels 3-7 from C5, 91 COCO classes."""
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=resnet("resnet50", size),
        min_level=3,
        max_level=7,
        use_p5=False,
        image_shape=(size, size, 3),
    )
    return keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=classes, anchor_generator=None
    )


@dataclasses.dataclass
class HubModel:
    """One keras-hub model of the test table.

    Attributes:
        name: the test id.
        build: `build(size)` -> the built `keras.Model`.
        size: the input side the test uses (small, to stay fast).
        slow: True marks the test `slow` (not in the default run).
        preset: `(preset name, parameter count its metadata states, size,
            "model" or "backbone": what the count covers)`, checked against
            `build(size)` where given.
        min_reduction: the learnables fraction the test must prune.
        wrap_options: keyword arguments of `kt.TaylorPrunableModel` the
            test gives (e.g. `prune_dense=True` for a transformer, whose
            channels are made by Dense layers).
        unloadable: class names of keras-hub layers whose own config does
            not make them again; a stripped model still holding one cannot
            reload (the original does: its `from_config` runs keras-hub's
            constructors), and the test checks that it fails for that reason.
    """

    name: str
    build: object
    size: int = 64
    slow: bool = False
    preset: tuple = None
    min_reduction: float = 0.2
    unloadable: tuple = ()
    wrap_options: dict = dataclasses.field(default_factory=dict)


MODELS = [
    HubModel("ResNetV2_50", lambda s: resnet("resnetv2_50", s), 64, slow=True),
    HubModel("ResNet18_classifier", lambda s: resnet_classifier("resnet18", s), 32),
    HubModel("CSPNet_resnet50", lambda s: cspnet("cspresnet50", s), 64, slow=True),
    HubModel("CSPNet_darknet53", lambda s: cspnet("cspdarknet53", s), 64, slow=True),
    HubModel("DenseNet121", lambda s: densenet("densenet121", s), 32, slow=True),
    HubModel(
        "DeepLabV3Plus_resnet50", deeplab_v3_plus, 64, slow=True,
        preset=("deeplab_v3_plus_resnet50_pascalvoc", 39190656, 512, "backbone"),
    ),
    # MiT's blocks are traced (custom layers opened by their call), so the
    # stripped model holds their inner layers, not HierarchicalTransformerEncoder
    # (whose get_config returns keys its __init__ refuses in keras-hub 0.32).
    # keras-hub's DropPath branches in Python on `training` and stays opaque,
    # blocking the residual streams: without prune_dense, hub_table measured
    # a max reduction of 23.5% (MiT-B0 alone: 17.6%).
    HubModel("SegFormer_b0", segformer_b0, 64, slow=True),  # 23.5% could go in docs/zoo.md's run
    HubModel(
        "RetinaNet_resnet50_fpn", retinanet_resnet50_fpn, 64, slow=True,
        preset=("retinanet_resnet50_fpn_coco", 34121239, 512, "model"),
    ),
    # Backbones whose convolutions sit inside keras-hub block layers, which
    # keras-taylor opens by tracing their `call` (tests/hub/test_hub_traced.py
    # checks them with its own protocol; here they get the table's).
    HubModel("MobileNetV3_small_050", mobilenet_v3_small, 64),
    HubModel("EfficientNetV2_rw_t", efficientnet_v2_rw_t, 64, slow=True),
    HubModel("HGNetV2_b4", hgnetv2_b4, 64, slow=True),
    # 17.6% can go with default settings (docs/zoo.md); its attention and MLP Dense layers prune too here
    HubModel("MiT_b0", mit_b0, 64, slow=True, wrap_options={"prune_dense": True}),
]
