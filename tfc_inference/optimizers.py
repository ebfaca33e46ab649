"""Optimizers for the latent-space optimizations (iterative inference, BBVI)."""

import tensorflow as tf


def built_adam(learning_rate, variables):
  """Keras Adam over `variables` with its slot variables created now, eagerly.

  Left to itself, Keras creates the slots on the first `apply_gradients`, i.e.
  inside the first traced `tf.function` step. That fails with "Tensor.op is
  undefined when eager execution is enabled" when TensorFlow was first imported
  inside absl's `app.run` (as `examples/evaluate.py` does, to start quickly).
  """
  optimizer = tf.keras.optimizers.Adam(learning_rate)
  optimizer.build(list(variables))
  return optimizer
