"""Rounding relaxations and temperature schedules."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.inference import rounding

SEED = tf.constant([1, 2], tf.int32)


def test_sga_sample_lies_between_floor_and_ceil():
  v = tf.random.stateless_uniform([10000], [0, 1], -5., 5.)
  for tau in [2., 0.5, 0.1]:
    sample = rounding.sga_round(v, tau, SEED).numpy()
    assert np.all(sample >= np.floor(v.numpy()) - 1e-6)
    assert np.all(sample <= np.floor(v.numpy()) + 1 + 1e-6)


def test_sga_approaches_rounding_as_tau_goes_to_zero():
  v = tf.random.stateless_uniform([10000], [0, 2], -5., 5.)
  # Keep away from the exact midpoints, where rounding is a coin flip.
  v = tf.where(tf.abs(v - tf.floor(v) - .5) < .05, tf.round(v) + .3, v)
  errors = [np.mean(np.abs(rounding.sga_round(v, tau, SEED).numpy()
                           - np.round(v.numpy())))
            for tau in [1., 0.1, 1e-3]]
  assert errors[0] > errors[1] > errors[2]
  assert errors[2] < 1e-2


def test_sga_at_integers_returns_the_integer():
  v = tf.constant([-2., 0., 3.])
  np.testing.assert_allclose(rounding.sga_round(v, 0.5, SEED).numpy(), v.numpy())


@pytest.mark.parametrize("fn", [
    lambda v: rounding.sga_round(v, 0.3, SEED),
    lambda v: rounding.annealed_round(v, 0.3),
    rounding.ste_round,
    lambda v: rounding.noisy_round(v, SEED),
])
def test_gradients_are_finite_near_integers(fn):
  v = tf.Variable([-1., -1e-7, 0., 1e-7, 0.5, 1. - 1e-7, 1., 2. + 1e-6])
  with tf.GradientTape() as tape:
    out = tf.reduce_sum(fn(v) ** 2)
  grad = tape.gradient(out, v)
  assert np.all(np.isfinite(grad.numpy()))
  assert np.all(np.isfinite(fn(v).numpy()))


def test_deterministic_annealing_is_expected_rounding():
  v = np.array([0.2, 1.7, -0.4], np.float32)
  tau = 0.5
  frac = v - np.floor(v)
  # P(up) of the tempered Bernoulli with logits -atanh(distance) / tau.
  p_up = 1 / (1 + np.exp((np.arctanh(1 - frac) - np.arctanh(frac)) / tau))
  np.testing.assert_allclose(rounding.annealed_round(tf.constant(v), tau).numpy(),
                             np.floor(v) + p_up, rtol=1e-5)


def test_sga_rounds_up_with_the_tempered_probability_as_tau_vanishes_hard():
  # With hard (argmax) directions the up-frequency is P(up); the relaxed sample
  # at a small temperature is nearly hard.
  v = tf.fill([20000], 0.3)
  tau = 0.5
  sample = rounding.sga_round(v, tau, SEED).numpy()
  p_up = 1 / (1 + np.exp((np.arctanh(0.7) - np.arctanh(0.3)) / tau))
  assert np.mean(sample > 0.5) == pytest.approx(p_up, abs=0.02)


def test_sga_sample_is_the_two_class_gumbel_softmax_sample():
  """The logistic-noise form draws from tfp's RelaxedOneHotCategorical of the two
  directions (the paper's definition): equal quantiles over many draws."""
  import tensorflow_probability as tfp  # pylint: disable=import-outside-toplevel
  v = tf.fill([100000], 2.3)
  tau = 0.6
  logits = tf.stack([-tf.math.atanh(v - 2.), -tf.math.atanh(3. - v)], -1) / tau
  up = tfp.distributions.RelaxedOneHotCategorical(tau, logits=logits).sample(
      seed=tf.constant([7, 8]))[..., 1]
  reference = 2. + up.numpy()
  sample = rounding.sga_round(v, tau, SEED).numpy()
  quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
  # Standard error of a quantile of 1e5 draws is well below 0.01 here.
  np.testing.assert_allclose(np.quantile(sample, quantiles),
                             np.quantile(reference, quantiles), atol=0.01)


def test_ste_rounds_forward_and_passes_gradient():
  v = tf.Variable([0.3, 1.6])
  with tf.GradientTape() as tape:
    out = rounding.ste_round(v)
    total = tf.reduce_sum(3. * out)
  np.testing.assert_array_equal(out.numpy(), [0., 2.])
  np.testing.assert_array_equal(tape.gradient(total, v).numpy(), [3., 3.])


def test_schedules():
  assert rounding.schedule_value("paper", 0, 0.5, 1e-3, 700) == pytest.approx(0.5)
  assert rounding.schedule_value("paper", 700, 0.5, 1e-3, 700) == pytest.approx(0.5)
  assert rounding.schedule_value("paper", 2000, 0.5, 1e-3, 700) == pytest.approx(
      0.5 * np.exp(-1.3), rel=1e-5)
  assert rounding.schedule_value("naive", 1000, 0.5, 1e-3, 700) == pytest.approx(
      0.5 * np.exp(-1.), rel=1e-5)


@pytest.mark.parametrize("method,fn", [
    ("sga", lambda v, tau, seed: rounding.sga_round(v, tau, seed)),
    ("danneal", lambda v, tau, seed: rounding.annealed_round(v, tau)),
    ("ste", lambda v, tau, seed: rounding.ste_round(v)),
    ("unoise", lambda v, tau, seed: rounding.noisy_round(v, seed)),
    ("map", lambda v, tau, seed: rounding.identity_round(v)),
])
def test_rounding_layers_compute_their_functions(method, fn):
  """Each Keras layer gives exactly its function's values and gradients, eagerly
  and inside a tf.function (compared with the function traced the same way:
  graph optimizations may change the last bit of the noise)."""
  v = tf.constant(np.random.default_rng(2).normal(0, 3, (3, 5, 4)), tf.float32)
  tau = tf.constant(0.3)
  layer = rounding.relaxation_layer(method)
  assert isinstance(layer, rounding.RoundingRelaxation)
  assert not layer.trainable_weights
  np.testing.assert_array_equal(layer(v, tau, SEED).numpy(),
                                fn(v, tau, SEED).numpy())
  traced_layer = tf.function(lambda v: layer(v, tau, SEED))
  traced_fn = tf.function(lambda v: fn(v, tau, SEED))
  np.testing.assert_array_equal(traced_layer(v).numpy(), traced_fn(v).numpy())
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(v)
    from_layer = tf.reduce_sum(layer(v, tau, SEED) ** 2)
    from_fn = tf.reduce_sum(fn(v, tau, SEED) ** 2)
  np.testing.assert_allclose(tape.gradient(from_layer, v).numpy(),
                             tape.gradient(from_fn, v).numpy())


def test_a_rounding_layer_drops_into_a_keras_model():
  """A model author's own Keras model can use the layer with a temperature
  argument; at a tiny temperature SGA rounds."""

  class Quantizer(tf.keras.Model):

    def __init__(self):
      super().__init__()
      self.rounding = rounding.SGARounding()

    def call(self, inputs, tau):  # pylint: disable=arguments-differ
      return self.rounding(inputs, tau, SEED)

  v = tf.constant([[0.1, 0.8, -1.3, 2.45]])
  np.testing.assert_allclose(Quantizer()(v, tf.constant(1e-3)).numpy(),
                             np.round(v.numpy()))


def test_relaxation_layer_rejects_unknown_methods():
  with pytest.raises(ValueError, match="unknown rounding relaxation"):
    rounding.relaxation_layer("round_half_up")
