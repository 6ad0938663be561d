"""Guards for private Keras access that differs across the supported Keras 3 releases.

Supported: TensorFlow 2.18-2.21 with Keras 3.5-3.15 (see README). Each function
stands in for one private access and says which public API it replaces.
(Issue 25 gathers every private access in this module; these guards join it.)
"""

def unscale_loss_for_distribution(loss):
    """The loss value Keras's own train step gives its loss tracker.

    Public stand-in: none (Keras's TensorFlow `train_step` does this
    internally). Newer Keras releases (3.15 among them) divide the loss by the
    number of replicas before the gradient
    (`keras.src.losses.loss.scale_loss_for_distribution`) and multiply it back
    for the tracker with `keras.src.losses.loss.unscale_loss_for_distribution`;
    Keras 3.5 does neither, so the loss is tracked as it is.
    """
    from keras.src.losses import loss as loss_module

    unscale = getattr(loss_module, "unscale_loss_for_distribution", None)
    return loss if unscale is None else unscale(loss)
