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
