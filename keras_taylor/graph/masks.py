"""A copy of a model with a `ChannelMask` wherever a channel group enters a consumer.

The channel graph is built once, on the model as given, and carried over to
the copy: inserting masks changes no channel group, nor does copying a
grouped convolution that is depthwise as a `DepthwiseConv2D` (see
`graph.depthwise`).
"""

from keras_taylor import handlers
from keras_taylor.errors import NothingPrunableError
from keras_taylor.graph import depthwise
from keras_taylor.graph.channels import ChannelGraph
from keras_taylor.graph.flat import read_model
from keras_taylor.graph.replay import Rebuild, replay
from keras_taylor.graph.opaque import hidden_sources
from keras_taylor.masking import ChannelMask

class InsertMasks(Rebuild):
    """Copies the model, with a ChannelMask where groups enter consumers."""

    def __init__(self, channel_graph):
        self.graph = channel_graph
        self.masks = {}
        self.names = {n.name for n in channel_graph.flat.nodes}
        self.producer = {
            tid: node.name for node in channel_graph.flat.nodes for tid in node.outputs
        }

    def layer_class(self, node):
        if depthwise.is_grouped_depthwise(node):
            return depthwise.depthwise_class(node)
        return handlers.training_class(type(node.layer))

    def config(self, node):
        if depthwise.is_grouped_depthwise(node):
            return depthwise.depthwise_config(node)
        return node.config

    def weights(self, node):
        arrays = node.layer.get_weights()
        if depthwise.is_grouped_depthwise(node):
            return depthwise.depthwise_weights(node, arrays)
        return arrays

    def keeps_whole(self, nodes):
        # no mask inside, nothing to slice later: the nested model is copied
        # as it is (its batch norms are not swapped for fused ones)
        return not self.graph.touches_prunable(nodes)

    def wrap_input(self, node, k, value):
        if not handlers.get_handler(node.layer).consumes:
            return value
        tid = node.inputs[k]
        if not self.graph.unit_prunable[self.graph.tensor_units[tid]].any():
            return value
        if tid not in self.masks:
            base = f"{self.producer.get(tid, 'input')}_taylor_mask"
            name, i = base, 1
            while name in self.names:
                i += 1
                name = f"{base}_{i}"
            self.names.add(name)
            self.masks[tid] = ChannelMask(value.shape[-1], name=name)(value)
        return self.masks[tid]

def nothing_prunable_error(channel_graph, where="model"):
    """The `NothingPrunableError` naming what blocks each candidate layer."""
    blockers = channel_graph.source_blockers()
    hidden = hidden_sources(channel_graph.flat)
    if not blockers:
        message = (
            f"{where} has nothing prunable: it has no Conv1D/Conv2D (or other "
            "enabled source) layer whose filters could be removed"
            + (" that keras_taylor can see." if hidden else ".")
        )
    else:
        lines = [
            f"  {layer}: blocked by "
            + "; ".join(f"'{b}' ({why})" for b, why in reasons[:2])
            for layer, reasons in list(blockers.items())[:10]
        ]
        message = (
            f"{where} has nothing prunable: every candidate layer is blocked.\n"
            + "\n".join(lines)
        )
    if hidden:
        total = sum(h.convolutions for h in hidden.values())
        layers = "a layer" if len(hidden) == 1 else f"{len(hidden)} layers"
        message += (
            f"\n{total} convolution{'s' if total != 1 else ''} sit inside {layers} "
            "keras_taylor cannot see into:\n" + "\n".join(f"  {h.describe()}" for h in list(hidden.values())[:10])
        )
    return NothingPrunableError(message, blockers)

def with_masks(model, options, where="model"):
    """`(masked model, its ChannelGraph)`, reading and analysing `model` once.

    A model that already holds ChannelMasks (a prunable model loaded from a
    file) is used as it is.

    Raises:
        NothingPrunableError: when no channel group can be removed.
    """
    flat = read_model(model, where)
    graph = ChannelGraph(flat, options)
    if not graph.prunable_units.size:
        raise nothing_prunable_error(graph, f"{where} '{model.name}'")
    if any(isinstance(n.layer, ChannelMask) for n in flat.nodes):
        return model, graph
    tensor_map = {}
    masked = replay(flat, InsertMasks(graph), name=model.name, tensor_map=tensor_map)
    return masked, graph.carried_to(read_model(masked, where), tensor_map)

__all__ = ["InsertMasks", "nothing_prunable_error", "with_masks"]
