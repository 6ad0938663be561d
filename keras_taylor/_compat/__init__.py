"""Every access to Keras internals, in one place.

keras_taylor reads a model's graph, traces training steps and re-creates
layers in ways Keras 3 has no public API for, across the supported releases
(TensorFlow 2.18-2.21 with Keras 3.5-3.15, see README). Each function here wraps one
such access and says which public API it stands in for, so a Keras upgrade
that moves something breaks here, in one small function, and nowhere else.
Nothing in this package imports keras_taylor. It is split by what is
accessed (models, layers, training, runtime) and re-exports every
function, so callers write `_compat.name`.
"""

from keras_taylor._compat.models import (  # noqa: F401
    Functional,
    all_sublayers,
    built_input_shape,
    call_nodes_restored,
    functional_of_sequential,
    nodes_by_depth,
    producer,
    safe_mode_scope,
    structures,
)
from keras_taylor._compat.layers import (  # noqa: F401
    application_layer_classes,
    batch_norm_renorm,
    created_trainable_weights,
    keras_op_classes,
    raw_kernel,
)
from keras_taylor._compat.training import (  # noqa: F401
    assign_add_summed_over_replicas,
    compile_arguments,
    compiled_metric_and_loss,
    compute_loss,
    config_without_schedule,
    has_compiled_loss,
    leaf_metrics,
    learning_rate_schedule,
    metric_direction,
    replicas_dividing_the_loss,
    steps_done_in_epoch,
    track_loss,
)
from keras_taylor._compat.runtime import (  # noqa: F401
    build_when_called,
    constructor_arguments,
    print_msg,
    reset_global_seed,
    seed_generators,
)
