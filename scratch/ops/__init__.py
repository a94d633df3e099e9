"""Pure NumPy functions for the math: ``*_forward(...) -> (y, cache)``, ``*_backward(dy, cache)``.

They do no validation (the layer classes do); inputs are NHWC and weights in Keras layouts.
``conv_relu_pool_*`` compute Conv2D -> ReLU -> MaxPool2D as one op for training steps and
evaluation.
"""

from scratch.ops.activations import (
                                     leaky_relu_backward,
                                     leaky_relu_forward,
                                     sigmoid_backward,
                                     sigmoid_forward,
                                     softmax_backward,
                                     softmax_forward,
                                     tanh_backward,
                                     tanh_forward,
)
from scratch.ops.avgpool import avg_pool2d_backward, avg_pool2d_forward
from scratch.ops.batchnorm import (
                                     batch_moments,
                                     batch_norm_backward,
                                     batch_norm_forward,
                                     batch_norm_inference_forward,
                                     moving_average,
)
from scratch.ops.conv import conv2d_backward, conv2d_forward, conv2d_input_grad
from scratch.ops.conv_pool import (
                                     conv_relu_pool_backward,
                                     conv_relu_pool_forward,
                                     conv_relu_pool_infer,
                                     conv_relu_pool_routes,
                                     pool_tiles_conv_output,
)
from scratch.ops.dense import dense_backward, dense_forward
from scratch.ops.dropout import dropout_backward, dropout_forward, keep_mask
from scratch.ops.embedding import embedding_backward, embedding_forward
from scratch.ops.flatten import flatten_backward, flatten_forward
from scratch.ops.layernorm import layer_norm_backward, layer_norm_forward
from scratch.ops.loss import softmax_cross_entropy
from scratch.ops.padding import window_padding
from scratch.ops.pool import max_pool2d_backward, max_pool2d_forward
from scratch.ops.recurrent import (
                                     GATES,
                                     gate_pre_activations,
                                     hidden_states,
                                     recurrent_backward,
                                     recurrent_backward_through_time,
                                     recurrent_forward,
)
from scratch.ops.relu import relu_backward, relu_forward
from scratch.ops.sequence_loss import sequence_softmax_cross_entropy

__all__ = [
    "GATES", "avg_pool2d_backward", "avg_pool2d_forward", "batch_moments", "batch_norm_backward",
    "batch_norm_forward", "batch_norm_inference_forward", "conv2d_backward", "conv2d_forward",
    "conv2d_input_grad", "conv_relu_pool_backward", "conv_relu_pool_forward",
    "conv_relu_pool_infer", "conv_relu_pool_routes",
    "dense_backward", "dense_forward", "dropout_backward", "dropout_forward",
    "embedding_backward", "embedding_forward", "flatten_backward", "flatten_forward",
    "gate_pre_activations", "hidden_states", "keep_mask", "layer_norm_backward",
    "layer_norm_forward", "leaky_relu_backward", "leaky_relu_forward",
    "max_pool2d_backward", "max_pool2d_forward", "moving_average", "pool_tiles_conv_output",
    "recurrent_backward", "recurrent_backward_through_time", "recurrent_forward",
    "relu_backward", "relu_forward", "sequence_softmax_cross_entropy", "sigmoid_backward",
    "sigmoid_forward", "softmax_backward",
    "softmax_cross_entropy", "softmax_forward", "tanh_backward", "tanh_forward",
    "window_padding",
]
