"""Black-box variational inference over q(z) for lossy bits-back coding.

Paper: Yang, Bamler, Mandt (NeurIPS 2020), section 3.3, Algorithm 1, supplement S3.

* `reproducible_bbvi(y_hat)`: the decoder-side inference. Starting from the
  amortized q(z | y_hat) = f_h(y_hat), Adam (lr 0.003, 2000 iterations) maximizes
  the ELBO over (mean, log-variance) of q(z) with y_hat observed, using
  reparameterized samples from a stateless RNG seeded by a fixed seed. Encoder and
  decoder run the same function on the same y_hat and obtain the same q bit for bit
  (same machine type, same TF build: see `configure_determinism`).
* `BitsBackInference`: the encoder-side joint optimization of [M2]: SGA over y_hat
  and BBVI over q(z), minimizing the NELBO (net rate + lambda * distortion).

Rates are in bits; `z` is continuous (it is discretized only for coding).
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc
import tensorflow_probability as tfp

from tfc_inference.inference import rounding
from tfc_inference.models import frozen
from tfc_inference.models import fused_likelihood
from tfc_inference.models import hyperprior
from tfc_inference.models import noisy_normal
from tfc_inference.models import scale_table
from tfc_inference.models import tiling
from tfc_inference.util import progress

tfd = tfp.distributions
_LN2 = float(np.log(2.))

# How `net_bits` evaluates log p(y | z). The decoder repeats the encoder's
# reproducible BBVI bit for bit, so a bits-back file records which one it used.
# All give the same values to float rounding; the two-log-CDF form
# (`models.noisy_normal`) takes about 40% of the time of tfc's four with its
# gradient, and compiled by XLA (`fused_likelihood`, the default) a fraction of that.
LIKELIHOOD_FOUR_LOG_CDFS = 0  # tfc.NoisyNormal: bits-back files before 2026-12-04
LIKELIHOOD_TWO_LOG_CDFS = 1  # `noisy_normal.log_prob`: files of 2026-12-04 to -06
LIKELIHOOD_FUSED = 2  # the same two log-CDFs compiled by XLA (`fused_likelihood`)
LIKELIHOODS = (LIKELIHOOD_FOUR_LOG_CDFS, LIKELIHOOD_TWO_LOG_CDFS, LIKELIHOOD_FUSED)


def configure_determinism():
  """Makes TF ops deterministic so the decoder repeats the encoder's BBVI exactly.

  With op determinism on, TF refuses random ops without a seed, e.g. the
  initializers of a model built afterwards in the same process (whose values the
  loaded weights replace). A global seed, if none is set yet, keeps those legal;
  BBVI itself uses explicitly seeded stateless ops.
  """
  from tensorflow.python.framework import random_seed  # pylint: disable=import-outside-toplevel
  try:
    unseeded = random_seed.get_seed(None)[0] is None
  except RuntimeError:  # determinism already on without a seed
    unseeded = True
  if unseeded:
    tf.random.set_seed(0)
  try:
    tf.config.experimental.enable_op_determinism()
  except AttributeError:  # older TF
    pass


def net_bits(model, y, z, mean, log_var, hyper_synthesis=None,
             likelihood=LIKELIHOOD_FUSED):
  """Per-image -log2 p(y | z) - log2 p(z) + log2 q(z), y on the integer grid [B].

  p(y | z) is the Gaussian convolved with a unit uniform (tfc's NoisyNormal), so for
  integer y it is the probability mass the entropy coder uses; `likelihood` (one
  of `LIKELIHOODS`) chooses how it is evaluated. `hyper_synthesis`: as in the
  model's `y_conditional`.
  """
  loc, indexes = model.y_conditional(z, tf.shape(y)[1:3], hyper_synthesis)
  bits_y = -tf.reduce_sum(_log_p_y(y, loc, indexes, likelihood),
                          axis=[1, 2, 3]) / _LN2
  return bits_y + model.z_net_bits(z, mean, log_var)


def _log_p_y(y, loc, indexes, likelihood):
  """Elementwise log p(y | z) in nats, evaluated as `likelihood` says."""
  if likelihood == LIKELIHOOD_FUSED:
    return fused_likelihood.log_p_y(y - loc, indexes)
  scale = scale_table.clipped_scale(indexes)
  if likelihood == LIKELIHOOD_TWO_LOG_CDFS:
    return noisy_normal.log_prob(y, loc, scale)
  if likelihood == LIKELIHOOD_FOUR_LOG_CDFS:
    return tfc.NoisyNormal(loc=loc, scale=scale).log_prob(y)
  raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")


def reproducible_bbvi(model, y_hat, iterations=2000, lr=0.003, seed=0,
                      likelihood=LIKELIHOOD_FUSED):
  """q(z | y_hat) by seeded BBVI. `y_hat` [1, h, w, N] integers; returns numpy
  (mean, log_var), each [1, h/4, w/4, N], float32. `likelihood`: as in
  `net_bits` (a decoder passes the one its file records)."""
  configure_determinism()
  y_hat = tf.constant(y_hat, tf.float32)
  mean0, log_var0 = model.posterior_z(y_hat)
  if iterations <= 0:
    return mean0.numpy(), log_var0.numpy()
  mean = tf.Variable(mean0)
  log_var = tf.Variable(log_var0)
  optimizer = tf.keras.optimizers.Adam(lr)
  # Bit for bit the layers' outputs, so files coded before it still decode.
  hyper_synthesis = frozen.FrozenTransform(model.hyper_synthesis_transform)

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
  def step(t):
    eps = tf.random.stateless_normal(tf.shape(mean), tf.stack([seed, t]))
    with tf.GradientTape() as tape:
      z = mean + tf.exp(0.5 * log_var) * eps
      loss = tf.reduce_sum(net_bits(model, y_hat, z, mean, log_var,
                                    hyper_synthesis, likelihood))
    grads = tape.gradient(loss, [mean, log_var])
    optimizer.apply_gradients(zip(grads, [mean, log_var]))
    return loss

  for t in range(iterations):
    step(tf.constant(t, tf.int32))
  return mean.numpy(), tf.clip_by_value(log_var, -20., 10.).numpy()


@dataclasses.dataclass
class BitsBackConfig:
  """Settings of [M2]'s joint optimization (defaults: supplement S3)."""
  iterations: int = 2000
  lr: float = 5e-3
  tau0: float = 0.5
  annealing_rate: float = 1e-3
  t0: int = 700
  schedule: str = "paper"
  lmbda: float = None
  eval_every: int = 10
  seed: int = 0
  optimize_y: bool = True  # False: [A5], only q(z) is optimized (y_hat fixed)
  schedule_scale: float = 1.0  # as in `inference.InferenceConfig`
  compute_dtype: str = "float32"  # as in `inference.InferenceConfig`

  def __post_init__(self):
    rounding.check_optimization_settings(self.schedule, self.iterations,
                                         self.eval_every, self.schedule_scale)
    frozen.check_dtype(self.compute_dtype)

  def tau(self, step):
    return rounding.schedule_value(self.schedule, step * self.schedule_scale,
                                   self.tau0, self.annealing_rate, self.t0)


class BitsBackInference:
  """Joint SGA over y and BBVI over q(z) for a `BitsBackHyperprior` (batch of images).

  `run(x)` returns (integer y_hat numpy [B, h, w, N], dict of trajectories). The
  monitored "true" loss uses rounded y and a fixed z sample, so it is an unbiased
  one-sample estimate of the NELBO of the coded latents.
  """

  def __init__(self, model, config, progress_fn=None, progress_every=100):
    if not isinstance(model, hyperprior.BitsBackHyperprior):
      raise TypeError("bits-back inference needs a BitsBackHyperprior")
    self.model = model
    self.config = config
    self.lmbda = model.lmbda if config.lmbda is None else float(config.lmbda)
    self.progress_fn = progress_fn
    self.progress_every = progress_every
    self._exact = self._synthesis = None  # set by `freeze_transforms`

  def freeze_transforms(self):
    """Snapshots the decoder-side transforms as raw ops (`models.frozen`):
    `_exact` (synthesis, hyper-synthesis) in float32 for the rates and the
    monitored loss, `_synthesis` for the relaxed objective in
    `config.compute_dtype`. `run` calls it."""
    self._exact, self._synthesis = frozen.inference_transforms(
        self.model, self.config.compute_dtype)

  def _bits(self, y, mean, log_var, eps):
    """Net bits per image [B] of y and z = mean + std * eps, z ~ q(z | y)."""
    z = mean + tf.exp(0.5 * log_var) * eps
    return net_bits(self.model, y, z, mean, log_var, self._exact[1])

  def _loss(self, x, y, mean, log_var, eps, valid_shape, synthesis):
    bits = self._bits(y, mean, log_var, eps)
    mse, num_pixels = self.model.synthesis_mse(x, y, valid_shape, synthesis)
    return bits / num_pixels + self.lmbda * mse, bits / num_pixels, mse

  def variables(self, y, mean, log_var):
    """What the joint optimization updates, in the order of its gradients."""
    return [mean, log_var] + ([y] if self.config.optimize_y else [])

  def relaxed_loss_and_gradients(self, x, y, mean, log_var, tau, t, valid_shape):
    """One step's relaxed per-image losses [B] and the gradients of their sum
    w.r.t. (mean, log_var) and, with `config.optimize_y`, `y` (in that order).

    Iteration `t` draws z's noise and SGA's noise from `config.seed`. While the
    model is tiled, the distortion's gradient is accumulated tile by tile (the
    same gradient up to float rounding).
    """
    config, model = self.config, self.model
    variables = self.variables(y, mean, log_var)
    eps = tf.random.stateless_normal(tf.shape(mean), tf.stack([config.seed, t]))
    tiled = bool(model.tile)
    num_pixels = float(np.prod(valid_shape or tuple(x.shape[1:3])))
    with tf.GradientTape() as tape:
      y_relaxed = (rounding.sga_round(y, tau, tf.stack([config.seed + 1, t]))
                   if config.optimize_y else y)
      if tiled:
        rate = self._bits(y_relaxed, mean, log_var, eps) / num_pixels
      else:
        losses, _, _ = self._loss(x, y_relaxed, mean, log_var, eps, valid_shape,
                                  self._synthesis)
        total = tf.reduce_sum(losses)
    if not tiled:
      return losses, tape.gradient(total, variables)
    if config.optimize_y:
      return tiling.rd_gradients(
          tape, rate, y_relaxed, variables,
          model.synthesis_mse_and_gradient(x, y_relaxed, valid_shape,
                                           self._synthesis), self.lmbda)
    # y is fixed: the distortion is a constant.
    losses = rate + self.lmbda * model.synthesis_mse(x, y, valid_shape,
                                                     self._exact[0])[0]
    return losses, tape.gradient(rate, variables)

  def run(self, x, valid_shape=None):
    config = self.config
    model = self.model
    self.freeze_transforms()
    x = tf.convert_to_tensor(x, tf.float32)
    y0, (mean0, log_var0) = model.analyze(x)
    if not config.optimize_y:
      y0 = tf.round(y0)
    y_var = tf.Variable(y0)
    mean = tf.Variable(mean0)
    log_var = tf.Variable(log_var0)
    variables = self.variables(y_var, mean, log_var)
    optimizer = tf.keras.optimizers.Adam(config.lr)
    valid = None if valid_shape is None else tuple(int(s) for s in valid_shape)
    fixed_eps = tf.random.stateless_normal(tf.shape(mean0), [config.seed, -1])
    # What the relaxed distortion reads of x, computed once for all iterations.
    reference = (x if model.tile else
                 frozen.prepare_reference(self._synthesis, x))

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def step(tau, t):
      losses, grads = self.relaxed_loss_and_gradients(
          reference, y_var, mean, log_var, tau, t, valid)
      optimizer.apply_gradients(zip(grads, variables))
      return losses

    @tf.function
    def evaluate():
      return self._loss(x, tf.round(y_var), mean, log_var, fixed_eps, valid,
                        self._exact[0])

    start = time.time()
    clock = progress.Eta(config.iterations)
    init_loss, init_bpp, init_mse = (v.numpy() for v in evaluate())
    trajectory = [(0, init_loss.tolist())]
    last = init_loss
    for t in range(config.iterations):
      tau = config.tau(t)
      relaxed = step(tf.constant(tau, tf.float32), tf.constant(t, tf.int32))
      eta = clock.update(t + 1)
      if (t + 1) % config.eval_every == 0 or t + 1 == config.iterations:
        last = evaluate()[0].numpy()
        trajectory.append((t + 1, last.tolist()))
      if self.progress_fn and t % self.progress_every == 0:
        self.progress_fn(dict(
            iteration=t, tau=tau, relaxed_loss=float(np.mean(relaxed)),
            true_loss=float(last.mean()), elapsed=clock.elapsed(), eta=eta))
    return np.round(y_var.numpy()), dict(
        init_loss=init_loss, init_bpp=init_bpp, init_mse=init_mse,
        nelbo_trajectory=trajectory, seconds=time.time() - start)
