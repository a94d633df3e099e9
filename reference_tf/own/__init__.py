"""Check a network tfparity did not write: declare each layer's Keras twin and conventions.

    from reference_tf import own

    conv = own.functions(conv_forward_naive, conv_backward_naive,
                         conv_param={"stride": 1, "pad": 1})
    model = own.Model([own.Conv2D(conv, 8, 3, padding=1), ...], input_shape=(1, 28, 28),
                      loss=own.Loss(softmax_loss), conventions=own.Conventions(layout="NCHW",
                      kernel_layout="OIHW", names={"kernel": "w", "bias": "b"}))

``docs/own-network.md`` describes every option. NumPy only: TensorFlow is imported when a Keras
twin is first built.
"""

from reference_tf.loss import Loss
from reference_tf.own.conventions import Conventions
from reference_tf.own.hinge import HingeLoss
from reference_tf.own.layers import (
                                     Conv2D,
                                     Declaration,
                                     Dense,
                                     Flatten,
                                     MaxPool2D,
                                     OwnLayer,
                                     ReLU,
                                     functions,
                                     methods,
)
from reference_tf.own.losses import one_hot, value_and_gradient
from reference_tf.own.model import Function, Model
from reference_tf.own.normalization import (
                                     BatchNormalization,
                                     Dropout,
                                     GroupNormalization,
                                     LayerNormalization,
)
from reference_tf.own.sequence import GRU, LSTM, Embedding, SequenceLoss, SimpleRNN
from reference_tf.user_code import Fault, UserCodeError

__all__ = ["Conv2D", "Conventions", "Declaration", "Dense", "Fault", "Flatten", "Function",
           "Loss", "MaxPool2D", "Model", "OwnLayer", "ReLU", "UserCodeError", "functions",
           "methods", "one_hot", "value_and_gradient"]
__all__ += ["Embedding", "GRU", "LSTM", "SequenceLoss", "SimpleRNN"]
__all__ += ["BatchNormalization", "Dropout", "GroupNormalization", "HingeLoss",
            "LayerNormalization"]
