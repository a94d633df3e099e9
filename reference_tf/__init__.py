"""TensorFlow/Keras twins of the scratch models and the comparison engine."""
