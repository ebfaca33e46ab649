"""Log-density of a Gaussian convolved with a unit-width uniform, in half the work.

`tfc.NoisyNormal(loc, scale).log_prob(x)` evaluates four log-CDFs (the lower and the
upper tail at x +- 1/2) and selects the stable pair. The Gaussian is symmetric, so
the distance |x - loc| alone fixes the stable pair: two log-CDFs give the same value
(to float rounding) and about half the time, gradient included. Used by the relaxed
rate of iterative inference and by reproducible BBVI, which evaluate it thousands
of times per image (bits-back files record which form their BBVI used, since the
decoder repeats it bit for bit: see `inference.bbvi.LIKELIHOODS`).
"""

import tensorflow as tf
import tensorflow_probability as tfp


def log_prob(x, loc, scale):
  """log p(x) in nats of N(loc, scale^2) * U(-1/2, 1/2), elementwise (broadcast).

  p(x) = Phi((1/2 - d) / scale) - Phi((-1/2 - d) / scale) with d = |x - loc|, both
  terms in log space so that far tails stay finite.
  """
  distance = tf.abs(x - loc)
  standard = tfp.distributions.Normal(0., 1.)
  upper = standard.log_cdf((.5 - distance) / scale)
  lower = standard.log_cdf((-.5 - distance) / scale)
  return upper + tf.math.log1p(-tf.exp(lower - upper))
