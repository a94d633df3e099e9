"""The Keras twins of user layers: the Keras layers that compute exactly what a layer declares,
in the user's layouts.

A layer's ``twin_stack()`` (``reference_tf.own.layers``) lists the Keras layers and their
settings; here they become one Keras layer or a small ``keras.Sequential`` named like the user
layer:

- activations stored as NCHW (or any layout other than NHWC) are permuted to NHWC before a
  convolution or pooling and back after it;
- explicit padding becomes ``ZeroPadding2D`` followed by ``padding="valid"``;
- a Dense on images, and a Flatten, permute the images to the declared flatten order first
  (so an NCHW flatten is ``Permute`` then ``Flatten``).

Every layer of a stack gets the model's dtype, so nothing is cast on the way. The twin of a
user loss is ``reference_tf.loss.Loss.keras``.
"""

from __future__ import annotations

import keras


def keras_layer(layer, dtype: str) -> keras.layers.Layer:
    """The Keras layer (or ``keras.Sequential``) named ``layer.name`` computing what ``layer``
    (a built ``reference_tf.own`` layer) declares, on inputs in the user's layout; its variables
    are "kernel" and "bias"."""
    if not layer.built:
        raise ValueError(f"{layer.owner}: build the layer before asking for its Keras "
                         "twin (the input rank decides it).")
    parts = [(getattr(keras.layers, cls), settings) for cls, settings in layer.twin_stack()]
    if len(parts) == 1:
        cls, settings = parts[0]
        return cls(**settings, name=layer.name, dtype=dtype)
    layers = keras.Sequential([cls(**settings, dtype=dtype) for cls, settings in parts],
                              name=layer.name)
    layers.dtype_policy = keras.DTypePolicy(dtype)  # a Sequential takes no dtype argument
    return layers
