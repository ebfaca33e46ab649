"""Bayesian linear regression as a compression benchmark with a known posterior.

A synthetic problem draws w ~ N(0, I), inputs X whose feature j has N(0, s_j^2)
entries with scales s_j spread over `scale_decades` decades (some weights are pinned
down by the data, others stay as uncertain as the prior), and y = X w + noise of
known std. The exact posterior p(w | X, y) is Gaussian; its weights are compressed
with Bayesian AC (`compress_at`: code points of the posterior mean under the prior
N(0, I), entropy coded with a distribution fitted on other problems) and with iREC
(`irec_at`: a sample of the KL-optimal diagonal Gaussian of a tempered posterior).
Each result holds the real coded bits (decoded and checked), the decoded weights'
log density under the full-covariance posterior (nats) and their test MSE on fresh
observations of the same problem. `examples/bayesian_linear_regression.py` prints
them.
"""

import csv

import numpy as np

from tfc_inference.coding import bayesian_ac
from tfc_inference.coding import irec

QUANTILE, CDF = bayesian_ac.standard_normal_prior()  # the prior of w, per weight
MAX_BITS = 24
ALPHABET_LIMIT = 1024
# Code points seen only once in training are cheaper to escape than to model.
MIN_COUNT = 2


def synthesize_problem(num_features, num_points, noise_std, scale_decades, rng):
  """(X [num_points, num_features], y [num_points], w [num_features], feature
  scales [num_features]) with w ~ N(0, I)."""
  weights = rng.standard_normal(num_features)
  scales = 10. ** rng.uniform(-scale_decades / 2, scale_decades / 2, num_features)
  inputs = rng.standard_normal((num_points, num_features)) * scales
  targets = inputs @ weights + noise_std * rng.standard_normal(num_points)
  return inputs, targets, weights, scales


def observe(weights, scales, num_points, noise_std, rng):
  """Fresh observations (X, y) of the problem with these weights and scales."""
  inputs = rng.standard_normal((num_points, len(weights))) * scales
  return inputs, inputs @ weights + noise_std * rng.standard_normal(num_points)


def test_mse(weights, test_set):
  """Mean squared prediction error of `weights` on (X, y) `test_set`."""
  inputs, targets = test_set
  return float(np.mean((inputs @ weights - targets) ** 2))


def exact_posterior(inputs, targets, noise_std, beta=1.):
  """p(w | X, y) = N(mean, precision^-1): (mean [d], covariance [d, d],
  lower Cholesky factor of the precision [d, d]). With `beta` < 1 the posterior of
  the tempered likelihood p(y | X, w)^beta (the noise variance divided by beta)."""
  noise_var = noise_std ** 2 / beta
  precision = np.eye(inputs.shape[1]) + inputs.T @ inputs / noise_var
  covariance = np.linalg.inv(precision)
  mean = covariance @ inputs.T @ targets / noise_var
  return mean, covariance, np.linalg.cholesky(precision)


def posterior_log_prob(weights, mean, precision_cholesky):
  """log N(weights; mean, precision^-1) in nats, full covariance."""
  whitened = precision_cholesky.T @ (weights - mean)
  log_det_precision = 2. * np.sum(np.log(np.diag(precision_cholesky)))
  return .5 * (log_det_precision - len(mean) * np.log(2. * np.pi)
               - whitened @ whitened)


def mean_field(inputs, targets, noise_std):
  """Marginal means and std devs of the posterior, [d] each."""
  mean, covariance, _ = exact_posterior(inputs, targets, noise_std)
  return mean, np.sqrt(np.diag(covariance))


def code_points(mean, std, lmbda):
  return bayesian_ac.encode(mean, std, QUANTILE, CDF, lmbda, max_bits=MAX_BITS)


def fit_distribution(train_mean, train_std, lmbda):
  """Entropy model of code points at `lmbda`, fitted on other problems' posteriors
  (their mean-field parameters stacked, [num_train_problems, d])."""
  symbols = code_points(train_mean, train_std, lmbda).symbols
  return bayesian_ac.fit_symbol_distribution([symbols], ALPHABET_LIMIT, MAX_BITS,
                                             min_count=MIN_COUNT)


def uniform_quantization_bits(mean, step):
  """Ideal bits of round(mean / step) under N(0, 1) discretized to the step's bins."""
  index = np.round(mean / step)
  mass = CDF((index + .5) * step) - CDF((index - .5) * step)
  return float(-np.sum(np.log2(np.maximum(mass, 1e-300)))), index * step


def uniform_quantization_at_rate(mean, target_bits):
  """(step, bits, reconstruction) of the step whose rate is closest to target_bits.

  The rate falls (roughly monotonically) as the step grows, so bisect the step on a
  log scale.
  """
  low, high = np.log(1e-7), np.log(1e2)
  for _ in range(60):
    middle = .5 * (low + high)
    bits, _ = uniform_quantization_bits(mean, np.exp(middle))
    low, high = (middle, high) if bits > target_bits else (low, middle)
  step = np.exp(.5 * (low + high))
  bits, reconstruction = uniform_quantization_bits(mean, step)
  return step, bits, reconstruction


def compress_at(lmbda, problem, train_posteriors, noise_std, test_set):
  """Codes the problem's posterior mean at lmbda; returns a dict of results."""
  inputs, targets = problem
  mean, covariance, precision_cholesky = exact_posterior(inputs, targets, noise_std)
  points = code_points(mean, np.sqrt(np.diag(covariance)), lmbda)
  distribution = fit_distribution(*train_posteriors, lmbda)
  data = bayesian_ac.entropy_code(points.symbols, distribution)
  # The decoder's side: bytes -> symbols -> weights.
  decoded = bayesian_ac.decode(
      bayesian_ac.entropy_decode(data, distribution, mean.shape), QUANTILE)
  if not np.array_equal(decoded, points.values):
    raise AssertionError("decoded weights differ from the encoder's")
  ideal_bits = bayesian_ac.information_content_bits(points.symbols, distribution)
  step, uniform_bits, uniform_weights = uniform_quantization_at_rate(mean, ideal_bits)
  return {
      "method": "bayesian_ac",
      "lambda": lmbda,
      "sum_R": int(points.bits.sum()),
      "ideal_bits": ideal_bits,
      "coded_bits": 8 * len(data),
      "log_prob": posterior_log_prob(decoded, mean, precision_cholesky),
      "log_prob_at_mean": posterior_log_prob(mean, mean, precision_cholesky),
      "uniform_step": float(step),
      "uniform_bits": uniform_bits,
      "uniform_log_prob": posterior_log_prob(uniform_weights, mean,
                                             precision_cholesky),
      "test_mse": test_mse(decoded, test_set),
      "test_mse_at_mean": test_mse(mean, test_set),
      "uniform_test_mse": test_mse(uniform_weights, test_set),
  }


def irec_at(beta, problem, noise_std, test_set, settings):
  """Codes a sample of the mean-field tempered posterior with iREC; returns a
  dict of results (log_prob under the untempered posterior)."""
  inputs, targets = problem
  mean, _, _ = exact_posterior(inputs, targets, noise_std, beta)
  precision = np.eye(inputs.shape[1]) + beta * inputs.T @ inputs / noise_std ** 2
  std = 1. / np.sqrt(np.diag(precision))  # KL(q || posterior)-optimal diagonal q
  data, sample, info = irec.compress(mean, std, 0., 1., settings)
  decoded = irec.decompress(data, 0., 1., mean.shape, settings)  # the decoder's side
  if not np.array_equal(decoded, sample):
    raise AssertionError("the decoded iREC sample differs from the encoder's")
  true_mean, _, precision_cholesky = exact_posterior(inputs, targets, noise_std)
  return {
      "method": "irec",
      "beta": beta,
      "kl_bits": info["kl_bits"],
      "coded_bits": 8 * len(data),
      "log_prob": posterior_log_prob(decoded, true_mean, precision_cholesky),
      "log_prob_at_mean": posterior_log_prob(true_mean, true_mean, precision_cholesky),
      "test_mse": test_mse(decoded, test_set),
      "test_mse_at_mean": test_mse(true_mean, test_set),
  }


def run(num_features, num_points, lambdas, seed, noise_std=0.5, scale_decades=3.,
        num_train_problems=50, irec_betas=(), irec_settings=None,
        num_test_points=1000):
  """Compresses one synthetic problem at each lambda (Bayesian AC) and each beta
  (iREC); returns (Bayesian AC rows, iREC rows), dicts."""
  rng = np.random.default_rng(seed)

  def synthesize():
    return synthesize_problem(num_features, num_points, noise_std, scale_decades, rng)

  inputs, targets, weights, scales = synthesize()
  problem = (inputs, targets)
  # [2 (mean, std), num_train_problems, num_features]
  train_posteriors = np.stack(
      [mean_field(*synthesize()[:2], noise_std) for _ in range(num_train_problems)],
      axis=1)
  # A separate stream, so the test set leaves the problems above unchanged.
  test_set = observe(weights, scales, num_test_points, noise_std,
                     np.random.default_rng([seed, 1]))
  results = [compress_at(float(lmbda), problem, train_posteriors, noise_std, test_set)
             for lmbda in lambdas]
  settings = irec_settings or irec.Settings(kl_per_block=8., extra_samples=0.3,
                                            beams=5, seed=seed)
  irec_results = [irec_at(float(beta), problem, noise_std, test_set, settings)
                  for beta in irec_betas]
  return results, irec_results


CSV_COLUMNS = ("method", "lambda", "beta", "sum_R", "ideal_bits", "kl_bits",
               "coded_bits", "log_prob", "log_prob_at_mean", "test_mse",
               "test_mse_at_mean", "uniform_bits", "uniform_log_prob",
               "uniform_test_mse")


def write_csv(path, rows):
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
      writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                       for k, v in row.items()})
