"""Convolutions hidden inside layers keras-taylor cannot see into.

A layer with no handler that could not be traced (its `call` uses raw
TensorFlow ops, decides on tensor values or uses its own weights; see
`trace.py`), or one of Keras's own layers without a handler, is one opaque
node of the graph: the convolutions it holds are not candidates, and the
channels reaching it are kept. `hidden_sources`
finds such layers so that `kt.analyze` and the nothing-prunable error can say
where the convolutions are and how to teach keras-taylor the layer.
"""

import dataclasses

from keras_taylor import _compat, handlers


@dataclasses.dataclass
class HiddenSources:
    """An opaque layer and the convolutions it holds."""

    layer: str  # its name in the graph
    type: str  # its class name
    convolutions: int
    why: str = ""  # why it was not traced, when tracing was tried

    def describe(self):
        """What `analyze` and errors say about the layer."""
        plural = "s" if self.convolutions != 1 else ""
        why = f" (not traced: {self.why})" if self.why else ""
        return (
            f"{self.type} '{self.layer}' holds {self.convolutions} "
            f"convolution{plural} keras_taylor cannot see into{why}; teach it with "
            f"kt.register_layer({self.type}, handler) (see docs/handlers.md)"
        )


def _is_convolution(layer):
    """A sublayer with filters that keras_taylor could prune if it saw it."""
    return handlers.is_registered(layer) and hasattr(layer, "filters")


def hidden_sources(flat):
    """`{layer name: HiddenSources}` of the unregistered layers of `flat` holding convolutions."""
    found, seen = {}, set()
    for node in flat.nodes:
        layer = node.layer
        if id(layer) in seen or handlers.is_registered(layer):
            continue
        seen.add(id(layer))
        count = sum(_is_convolution(sub) for sub in _compat.all_sublayers(layer))
        if count:
            found[node.name] = HiddenSources(
                node.name, type(layer).__name__, count, node.opaque_reason or ""
            )
    return found
