"""The model as keras-taylor sees it: layer calls (`flat`) and channel groups (`channels`).

`read_model` -> `FlatGraph` -> `ChannelGraph` (built once per model) ->
`replay` (a new model from the flat graph, layer by layer).
"""

from keras_taylor.graph.channels import (
    ChannelGraph,
    Keep,
    Options,
    slice_weights,
    sliced_shapes,
)
from keras_taylor.graph.opaque import HiddenSources, hidden_sources
from keras_taylor.graph.flat import FlatGraph, LayerNode, SubModelCall, read_model
from keras_taylor.graph.replay import Rebuild, replay

__all__ = [
    "ChannelGraph",
    "FlatGraph",
    "HiddenSources",
    "Keep",
    "LayerNode",
    "Options",
    "Rebuild",
    "SubModelCall",
    "hidden_sources",
    "read_model",
    "replay",
    "slice_weights",
    "sliced_shapes",
]
