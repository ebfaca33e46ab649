"""Bayesian arithmetic coding: Algorithm 1, code-point symbols, entropy coding."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_probability as tfp

from tfc_inference.coding import bayesian_ac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUANTILE, CDF = bayesian_ac.standard_normal_prior()


def random_posteriors(count, seed):
  """Means, standard deviations and rate penalties spanning several decades."""
  rng = np.random.default_rng(seed)
  mu = rng.normal(0., 1.5, count)
  sigma = np.exp(rng.uniform(np.log(1e-3), np.log(2.), count))
  lmbda = np.exp(rng.uniform(np.log(1e-3), np.log(10.), count))
  return mu, sigma, lmbda


def loss(code_points, mu, sigma, lmbda):
  return bayesian_ac.code_point_loss(code_points.values, code_points.bits, mu, sigma,
                                     lmbda)


@pytest.mark.parametrize("max_bits", [1, 4, 10])
def test_algorithm_1_equals_brute_force_search(max_bits):
  mu, sigma, lmbda = random_posteriors(4000, seed=max_bits)
  fast = bayesian_ac.encode(mu, sigma, QUANTILE, CDF, lmbda, max_bits=max_bits)
  exhaustive = bayesian_ac.brute_force_encode(mu, sigma, QUANTILE, lmbda, max_bits)
  np.testing.assert_array_equal(fast.symbols, exhaustive.symbols)
  np.testing.assert_array_equal(fast.values, exhaustive.values)
  np.testing.assert_array_equal(loss(fast, mu, sigma, lmbda),
                                loss(exhaustive, mu, sigma, lmbda))
  # The test is only meaningful if the search often needs many bits.
  if max_bits == 10:
    assert np.mean(fast.bits == max_bits) > .02 and np.mean(fast.bits <= 3) > .2


def test_algorithm_1_equals_brute_force_for_per_dimension_laplace_prior():
  mu, sigma, lmbda = random_posteriors(1000, seed=7)
  scale = np.exp(np.random.default_rng(8).uniform(-1., 1., mu.shape))
  quantile_fn, cdf_fn = bayesian_ac.prior_from_distribution(
      tfp.distributions.Laplace(np.zeros_like(scale), scale))
  fast = bayesian_ac.encode(mu, sigma, quantile_fn, cdf_fn, lmbda, max_bits=8)
  exhaustive = bayesian_ac.brute_force_encode(mu, sigma, quantile_fn, lmbda, 8)
  np.testing.assert_allclose(loss(fast, mu, sigma, lmbda),
                             loss(exhaustive, mu, sigma, lmbda), rtol=1e-12)
  assert np.mean(fast.symbols == exhaustive.symbols) > .999


def test_code_point_fields_are_consistent_and_shapes_kept():
  mu, sigma, lmbda = random_posteriors(24, seed=3)
  cp = bayesian_ac.encode(mu.reshape(2, 3, 4), sigma.reshape(2, 3, 4), QUANTILE, CDF,
                          lmbda.reshape(2, 3, 4))
  for array in (cp.numerators, cp.bits, cp.values, cp.symbols):
    assert array.shape == (2, 3, 4)
  assert cp.numerators.dtype == np.int64 and cp.bits.dtype == np.int32
  assert cp.values.dtype == np.float64 and cp.symbols.dtype == np.int64
  assert np.all(cp.numerators % 2 == 1) and np.all(cp.numerators < 2 ** cp.bits)
  np.testing.assert_array_equal(
      cp.values, QUANTILE(cp.numerators / 2. ** cp.bits))
  np.testing.assert_array_equal(bayesian_ac.decode(cp.symbols, QUANTILE), cp.values)


def test_symbols_are_a_bijection_onto_code_points():
  symbols = np.arange(1, 2 ** 12)
  numerators, bits = bayesian_ac.symbols_to_code_points(symbols)
  assert np.all(numerators % 2 == 1) and np.all(numerators < 2 ** bits)
  positions = bayesian_ac.code_point_positions(numerators, bits)
  assert len(np.unique(positions)) == len(symbols)
  np.testing.assert_array_equal(
      bayesian_ac.code_points_to_symbols(numerators, bits), symbols)
  # 1/2 is the root, then 1/4, 3/4, then 1/8 ... 7/8.
  np.testing.assert_array_equal(positions[:7], [4, 2, 6, 1, 3, 5, 7] / np.array(8.))
  numerators, bits = bayesian_ac.symbols_to_code_points([2 ** 52 - 1])
  assert bits[0] == 52 and numerators[0] == 2 ** 52 - 1


def test_collapsed_posterior_gets_the_one_bit_code_point():
  for lmbda in [0., 1e-4, 1., 100.]:
    cp = bayesian_ac.encode(np.zeros(5), np.ones(5), QUANTILE, CDF, lmbda)
    np.testing.assert_array_equal(cp.bits, 1)
    np.testing.assert_array_equal(cp.numerators, 1)
    np.testing.assert_array_equal(cp.values, 0.)
    np.testing.assert_array_equal(cp.symbols, 1)


def test_means_beyond_the_prior_support_get_the_outermost_code_point():
  cp = bayesian_ac.encode(np.array([-40., 40.]), np.array([1e-3, 1e-3]), QUANTILE,
                          CDF, 1e-3, max_bits=16)
  np.testing.assert_array_equal(cp.bits, 16)
  np.testing.assert_array_equal(cp.numerators, [1, 2 ** 16 - 1])


def coded_bits(train_symbols, test_symbols, max_bits=24):
  distribution = bayesian_ac.fit_symbol_distribution(
      [train_symbols], alphabet_limit=4096, max_bits=max_bits)
  data = bayesian_ac.entropy_code(test_symbols, distribution)
  np.testing.assert_array_equal(
      bayesian_ac.entropy_decode(data, distribution, test_symbols.shape), test_symbols)
  return 8 * len(data)


def test_rate_and_distortion_move_monotonically_with_lambda():
  mu, sigma, _ = random_posteriors(6000, seed=11)
  train, test = slice(0, 3000), slice(3000, None)
  ideal_bits, real_bits, distortions = [], [], []
  for lmbda in [1e-3, 1e-2, 1e-1, 1., 10.]:
    cp = bayesian_ac.encode(mu, sigma, QUANTILE, CDF, lmbda)
    ideal_bits.append(int(cp.bits[test].sum()))
    real_bits.append(coded_bits(cp.symbols[train], cp.symbols[test]))
    distortions.append(float(np.sum((cp.values - mu) ** 2 / sigma ** 2)))
  assert np.all(np.diff(ideal_bits) < 0), ideal_bits
  assert np.all(np.diff(real_bits) < 0), real_bits
  assert np.all(np.diff(distortions) > 0), distortions


def test_entropy_coding_round_trip_with_escapes():
  mu, sigma, lmbda = random_posteriors(3000, seed=5)
  symbols = bayesian_ac.encode(mu, sigma, QUANTILE, CDF, lmbda).symbols
  distribution = bayesian_ac.fit_symbol_distribution(
      [symbols[:1000], symbols[1000:1500]], alphabet_limit=50)
  assert len(distribution.symbols) == 50
  # Rare code points, unseen ones and the extremes of a 24-bit alphabet.
  test = np.concatenate([symbols[1500:], [1, 2, 3, 2 ** 12, 2 ** 13 - 1, 2 ** 23,
                                          2 ** 24 - 1]]).reshape(-1, 1)
  escapes = ~np.isin(test, distribution.symbols)
  assert escapes.sum() > 100
  data = bayesian_ac.entropy_code(test, distribution)
  np.testing.assert_array_equal(
      bayesian_ac.entropy_decode(data, distribution, test.shape), test)
  ideal = bayesian_ac.information_content_bits(test, distribution)
  assert ideal <= 8 * len(data) <= ideal * 1.01 + 64


@pytest.mark.parametrize("train", [[], [np.array([7, 7, 7])]])
def test_entropy_coding_round_trip_of_degenerate_distributions(train):
  distribution = bayesian_ac.fit_symbol_distribution(train, alphabet_limit=10,
                                                     max_bits=24)
  for test in [np.zeros([0], np.int64), np.full([5], 7),
               np.array([1, 7, 2 ** 24 - 1, 5])]:
    data = bayesian_ac.entropy_code(test, distribution)
    np.testing.assert_array_equal(
        bayesian_ac.entropy_decode(data, distribution, test.shape), test)


def test_invalid_inputs_are_rejected():
  with pytest.raises(ValueError):
    bayesian_ac.code_points_to_symbols([2], [3])  # even numerator
  with pytest.raises(ValueError):
    bayesian_ac.code_points_to_symbols([9], [3])  # 9/8 >= 1
  with pytest.raises(ValueError):
    bayesian_ac.symbols_to_code_points([0])
  distribution = bayesian_ac.fit_symbol_distribution([[3]], 10, max_bits=8)
  with pytest.raises(ValueError):
    bayesian_ac.entropy_code(np.array([2 ** 8]), distribution)


def test_linear_regression_codes_weights_with_both_coders(tmp_path):
  from tfc_inference.evaluation import linear_regression  # pylint: disable=import-outside-toplevel
  results, irec_results = linear_regression.run(
      num_features=20, num_points=10, lambdas=[0.01, 1.], seed=0,
      num_train_problems=3, irec_betas=[0.1, 1.], num_test_points=50)
  assert [r["lambda"] for r in results] == [0.01, 1.]
  assert results[0]["coded_bits"] > results[1]["coded_bits"]
  for r in results:
    assert r["log_prob"] <= r["log_prob_at_mean"]
    assert r["uniform_log_prob"] <= r["log_prob_at_mean"]
  # iREC decodes a sample (checked inside), costs more than its KL and fewer
  # bits for a tempered (less informative) posterior.
  assert [r["beta"] for r in irec_results] == [0.1, 1.]
  for r in irec_results:
    assert r["coded_bits"] > r["kl_bits"] > 0
    assert r["log_prob"] <= r["log_prob_at_mean"]
  assert irec_results[0]["kl_bits"] < irec_results[1]["kl_bits"]
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", "bayesian_linear_regression.py"),
       "--num_features", "12", "--num_points", "8", "--num_train_problems", "2",
       "--lambdas", "1", "--irec_betas", "1", "--csv", str(tmp_path / "r.csv")],
      capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "iREC" in done.stdout
  with open(tmp_path / "r.csv") as f:
    assert [row.split(",")[0] for row in f.read().split()[1:]] == ["bayesian_ac", "irec"]
