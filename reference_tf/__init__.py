"""TensorFlow/Keras twins of the scratch models and the comparison engine."""

from reference_tf.compare import Comparison, compare, compare_arrays, tolerances
from reference_tf.gradients import layer_pass, loss_and_grads, trace, trace_arrays
from reference_tf.testing import assert_layer_parity, assert_model_parity
from reference_tf.twin import copy_weights, keras_params, twin

__all__ = [
    "Comparison", "assert_layer_parity", "assert_model_parity", "compare", "compare_arrays",
    "copy_weights", "keras_params", "layer_pass", "loss_and_grads", "tolerances", "trace",
    "trace_arrays", "twin",
]
