"""log p(y | z) of the hyperprior's noisy normals with its gradients, compiled by XLA.

The two-log-CDF noisy normal (`models.noisy_normal`) of a Kodak image's 295k
latents is a long chain of elementwise ops; XLA fuses it, gradients included,
into one pass (4 against 31 ms). Iterative inference evaluates it thousands of
times per image, and so does reproducible BBVI, at encode and again at decode.

  relaxed_log_p_y  per-image sums, for relaxed objectives (SGA and relatives).
  training_rate    training's noisy y and its rate, through relaxed_log_p_y.
  log_p_y          elementwise, for BBVI: XLA compiles the same program in every
                   process of a machine, so the decoder repeats the encoder's
                   numbers bit for bit (tested in a separate process); the sums
                   stay TensorFlow reductions, deterministic under
                   `bbvi.configure_determinism`.

XLA may round the last bits differently from the unfused ops, so bits-back files
record which form their BBVI used (`bbvi.LIKELIHOODS`).
"""

import math

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.models import noisy_normal
from tfc_inference.models import scale_table


def _log_p(offsets, indexes):
  """Elementwise log-likelihood in nats of `offsets` (latents minus means) under
  noisy normals of continuous scale `indexes` (the 64-level table's, clipped)."""
  return noisy_normal.log_prob(offsets, 0., scale_table.clipped_scale(indexes))


@tf.function(jit_compile=True)
def _per_image_and_gradients(offsets, indexes):
  with tf.GradientTape() as tape:
    tape.watch([offsets, indexes])
    log_p = tf.reduce_sum(_log_p(offsets, indexes), axis=[1, 2, 3])
  return log_p, tape.gradient(log_p, [offsets, indexes])


@tf.function(jit_compile=True)
def _elementwise_and_gradients(offsets, indexes):
  with tf.GradientTape() as tape:
    tape.watch([offsets, indexes])
    log_p = _log_p(offsets, indexes)
  # Elementwise: the gradient of the sum is each element's own derivative.
  return log_p, tape.gradient(log_p, [offsets, indexes])


@tf.custom_gradient
def relaxed_log_p_y(y_offsets, indexes):
  """Per-image log-likelihood [B] in nats of relaxed latents `y_offsets` [B, h, w,
  M] (relative to their means) under noisy normals of continuous scale `indexes`
  (the relaxed rate's y term; differentiable)."""
  log_p, (d_offsets, d_indexes) = _per_image_and_gradients(y_offsets, indexes)

  def gradient(upstream):  # images are independent: scale each image's gradient
    per_image = upstream[:, None, None, None]
    return per_image * d_offsets, per_image * d_indexes
  return log_p, gradient


@tf.custom_gradient
def log_p_y(y_offsets, indexes):
  """Elementwise log-likelihood [B, h, w, M] in nats of `y_offsets` (latents minus
  means) under noisy normals of continuous scale `indexes`; differentiable."""
  log_p, (d_offsets, d_indexes) = _elementwise_and_gradients(y_offsets, indexes)

  def gradient(upstream):
    return upstream * d_offsets, upstream * d_indexes
  return log_p, gradient


def training_rate(y, indexes, loc=None):
  """Training's relaxation of y [B, h, w, M]: `y + u`, u ~ U(-1/2, 1/2), and its
  bits per image [B] under noisy normals of means `loc` (None: 0) and scale
  indexes `indexes`.

  The rate tfc's `LocationScaleIndexedEntropyModel` computes in training (indexes
  bounded to the table with tfc's gradient-keeping bounds, tfc's four log-CDFs
  replaced by two), compiled by XLA: an N=64 training step at 256x256 x 2 in
  bfloat16 took 172 against 191-212 ms on one core.
  """
  indexes = tfc.upper_bound(tfc.lower_bound(indexes, 0.),
                            scale_table.SCALES_LEVELS - 1.)
  centered = y if loc is None else y - loc
  noisy = centered + tf.random.uniform(tf.shape(y), -.5, .5, dtype=y.dtype)
  bits = -relaxed_log_p_y(noisy, indexes) / math.log(2.)
  return (noisy if loc is None else noisy + loc), bits
