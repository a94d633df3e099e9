"""TensorFlow/Keras twins of the scratch models and the comparison engine."""

from reference_tf.twin import copy_weights, keras_params, twin

__all__ = ["copy_weights", "keras_params", "twin"]
