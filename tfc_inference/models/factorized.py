"""tfc's deep factorized density, evaluated without batched matrix products.

`tfc.DeepFactorized` runs its per-channel MLP as `tf.linalg.matmul` of
`[C, out, in]` matrices with `[C, in, B]` activations, and its first and last
layers have `in = 1` or `out = 1`. TF 2.14's oneDNN batch-matmul kernel corrupts
the heap now and then on such products with size-1 dimensions (compare
tensorflow#117700 and #123109): a process that does nothing but evaluate
`DeepFactorized.log_prob` and its gradient on a `[1, 1, 2, 8]` input in a
`tf.function` crashed 2 times in 59 fresh runs under thread oversubscription, in
`BatchMatMulMkl`. The bits-back decoder runs exactly such a graph (reproducible
BBVI on a small z).

The classes here are tfc's, with the MLP's products written as a broadcast
multiply and a sum over the (at most 3) inputs of each unit. The variables,
their names and so the checkpoints are the same; the values agree to float
rounding (`tests/test_factorized.py`).
"""

import tensorflow as tf
import tensorflow_compression as tfc


class DeepFactorized(tfc.DeepFactorized):
  """`tfc.DeepFactorized` whose cumulative MLP uses no batched matmul."""

  def _logits_cumulative(self, inputs):
    # As tfc: collapse to [channels, 1, batch], run the MLP, restore the shape.
    shape = tf.shape(inputs)
    inputs = tf.reshape(inputs, (-1, 1, self.batch_shape.num_elements()))
    logits = tf.transpose(inputs, (2, 1, 0))
    for i in range(len(self.num_filters) + 1):
      matrix = tf.nn.softplus(self._matrices[i])  # [C, out, in]
      # sum_in matrix[c, out, in] * logits[c, in, b], without BatchMatMul.
      logits = tf.reduce_sum(matrix[:, :, :, None] * logits[:, None, :, :], axis=2)
      logits += self._biases[i]
      if i < len(self.num_filters):
        factor = tf.math.tanh(self._factors[i])
        logits += factor * tf.math.tanh(logits)
    logits = tf.transpose(logits, (2, 1, 0))
    return tf.reshape(logits, shape)


class NoisyDeepFactorized(tfc.UniformNoiseAdapter):
  """`DeepFactorized` convolved with unit uniform noise (as `tfc.NoisyDeepFactorized`)."""

  def __init__(self, name="NoisyDeepFactorized", **kwargs):
    super().__init__(DeepFactorized(**kwargs), name=name)
