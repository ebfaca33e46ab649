"""Relaxations of rounding used by iterative inference (paper section 3.2, S1).

All functions take `v`, the values relative to their quantization grid (so the
grid points are the integers), and return the relaxed values, same shape/dtype.

  * `sga_round`: Stochastic Gumbel Annealing. Rounding direction drawn from a
    tempered two-class distribution with logits `-atanh(v - floor(v)) / tau` (down)
    and `-atanh(ceil(v) - v) / tau` (up), relaxed with the Gumbel-softmax trick at
    temperature `tau`.
  * `annealed_round`: deterministic annealing, the expectation under the same
    two-class distribution.
  * `ste_round`: round forward, identity backward.
  * `noisy_round`: additive uniform noise U(-1/2, 1/2) (the training relaxation).
  * `identity_round`: MAP, no rounding at all.

Each also has a thin Keras-layer form (`SGARounding`, `AnnealedRounding`,
`STERounding`, `NoisyRounding`, `IdentityRounding`; `relaxation_layer(method)`)
with one call signature, `layer(v, tau, seed)`, so a model author can drop any of
them into a tfc model; `iterative.IterativeInference` uses them.
"""

import math

import numpy as np
import tensorflow as tf

# Keeps atanh finite: distances are clipped to [0, 1 - _EPS].
_EPS = 1e-5
# Smallest uniform draw of SGA's noise (log(u) stays finite).
_TINY = float(np.finfo(np.float32).tiny)


def _grid_neighbours(v):
  return tf.stop_gradient(tf.floor(v)), tf.stop_gradient(tf.math.ceil(v))


def _up_logit(v, tau):
  """Logit of rounding up rather than down: the difference of the two directions'
  logits, -atanh(ceil(v) - v) / tau - (-atanh(v - floor(v)) / tau). Finite with
  finite gradients: distances are clipped below 1 so atanh stays finite; at an
  exact integer floor == ceil, so either direction returns v itself."""
  v_floor, v_ceil = _grid_neighbours(v)
  down = tf.clip_by_value(v - v_floor, 0., 1. - _EPS)
  up = tf.clip_by_value(v_ceil - v, 0., 1. - _EPS)
  return (tf.math.atanh(down) - tf.math.atanh(up)) / tau


def _combine(v, up_weight):
  v_floor, v_ceil = _grid_neighbours(v)
  return v_floor + up_weight * (v_ceil - v_floor)


def sga_round(v, tau, seed):
  """SGA sample in [floor(v), ceil(v)]; approaches round(v) as tau -> 0.

  The Gumbel-softmax sample of the two directions at temperature `tau`. With two
  classes the softmax of (logits + Gumbel noise) / tau is the sigmoid of (logit
  difference + logistic noise) / tau, since the difference of two independent
  Gumbel variables is logistic: one uniform draw per value instead of two (4x
  faster than `tfp.distributions.RelaxedOneHotCategorical`, the same distribution).

  Args:
    v: float tensor, values relative to the integer grid.
    tau: scalar temperature > 0.
    seed: stateless seed, int32 tensor of shape [2].
  """
  u = tf.random.stateless_uniform(tf.shape(v), seed, minval=_TINY, maxval=1.,
                                  dtype=v.dtype)
  logistic = tf.math.log(u) - tf.math.log1p(-u)
  return _combine(v, tf.math.sigmoid((_up_logit(v, tau) + logistic) / tau))


def annealed_round(v, tau):
  """Deterministic annealing: E[rounded value] under the tempered direction
  distribution (the same logits as SGA, expectation instead of a sample)."""
  return _combine(v, tf.math.sigmoid(_up_logit(v, tau)))


def ste_round(v):
  return v + tf.stop_gradient(tf.round(v) - v)


def noisy_round(v, seed):
  return v + tf.random.stateless_uniform(tf.shape(v), seed, -.5, .5)


def identity_round(v):
  return v


def paper_schedule(step, tau0=0.5, annealing_rate=1e-3, t0=700):
  """tau(t) = min(tau0, tau0 * exp(-c * (t - t0))) (paper, supplement S3)."""
  step = tf.cast(step, tf.float32)
  return tf.minimum(tau0, tau0 * tf.exp(-annealing_rate * (step - t0)))


def naive_schedule(step, tau0=0.5, annealing_rate=1e-3):
  """tau(t) = tau0 * exp(-c * t)."""
  return tau0 * tf.exp(-annealing_rate * tf.cast(step, tf.float32))


SCHEDULES = {"paper": paper_schedule, "naive": naive_schedule}


def check_optimization_settings(schedule, iterations, eval_every, schedule_scale):
  """Raises ValueError for settings shared by every iterative optimizer's config:
  an unknown `schedule` name, iterations < 0, eval_every < 1, schedule_scale <= 0."""
  if schedule not in SCHEDULES:
    raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, not {schedule!r}")
  if iterations < 0 or eval_every < 1:
    raise ValueError("iterations must be >= 0 and eval_every >= 1")
  if not schedule_scale > 0:
    raise ValueError(f"schedule_scale must be > 0, not {schedule_scale}")


# The paper's temperature schedules (supplement S3) are tuned for 2000 iterations.
PAPER_ITERATIONS = 2000


def fitted_schedule_scale(iterations):
  """The schedule_scale that compresses (or stretches) the paper's schedule onto
  `iterations`, so a shorter run still anneals: PAPER_ITERATIONS / iterations."""
  return PAPER_ITERATIONS / max(1, iterations)


def schedule_value(name, step, tau0, annealing_rate, t0):
  """The schedule's temperature at `step` as a Python float (no TF ops: it is
  evaluated once per optimization step)."""
  if name == "paper":
    return min(tau0, tau0 * math.exp(-annealing_rate * (step - t0)))
  return tau0 * math.exp(-annealing_rate * step)


# ---------------------------------------------------------------- Keras layers
class RoundingRelaxation(tf.keras.layers.Layer):
  """A rounding relaxation as a stateless Keras layer.

  Every relaxation takes the same call arguments, so a model can swap one for
  another: `layer(v, tau, seed)` with `v` relative to the integer grid (any
  shape, float32), `tau` a scalar temperature and `seed` a stateless int32 seed
  of shape [2]. Each layer ignores the arguments its relaxation does not use.
  Returns a tensor of the shape and dtype of `v`.
  """

  def __init__(self, **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)

  def call(self, v, tau=None, seed=None):  # pylint: disable=arguments-differ
    raise NotImplementedError


class SGARounding(RoundingRelaxation):
  """Stochastic Gumbel Annealing (`sga_round`): needs `tau` and `seed`."""

  def call(self, v, tau=None, seed=None):
    return sga_round(v, tau, seed)


class AnnealedRounding(RoundingRelaxation):
  """Deterministic annealing (`annealed_round`): needs `tau`."""

  def call(self, v, tau=None, seed=None):
    return annealed_round(v, tau)


class STERounding(RoundingRelaxation):
  """Straight-through rounding (`ste_round`)."""

  def call(self, v, tau=None, seed=None):
    return ste_round(v)


class NoisyRounding(RoundingRelaxation):
  """Additive uniform noise (`noisy_round`): needs `seed`."""

  def call(self, v, tau=None, seed=None):
    return noisy_round(v, seed)


class IdentityRounding(RoundingRelaxation):
  """No rounding (MAP, `identity_round`)."""

  def call(self, v, tau=None, seed=None):
    return identity_round(v)


# The relaxation of each iterative-inference method (see `iterative.METHODS`).
RELAXATION_LAYERS = {"sga": SGARounding, "danneal": AnnealedRounding,
                     "ste": STERounding, "unoise": NoisyRounding,
                     "map": IdentityRounding}


def relaxation_layer(method, **kwargs):
  """A new `RoundingRelaxation` layer for an iterative-inference method name."""
  if method not in RELAXATION_LAYERS:
    raise ValueError(f"unknown rounding relaxation {method!r}; one of "
                     f"{tuple(RELAXATION_LAYERS)}")
  return RELAXATION_LAYERS[method](name=f"{method}_rounding", **kwargs)
