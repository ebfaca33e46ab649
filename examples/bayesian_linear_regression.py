"""Bayesian AC on a Bayesian linear regression: compress the posterior's weights.

Synthesizes w ~ N(0, I), inputs X whose feature j has N(0, s_j^2) entries with scales
s_j spread over --scale_decades decades (so some weights are pinned down by the data
and others stay as uncertain as the prior), and y = X w + noise (known noise std). It
computes the exact Gaussian posterior p(w | X, y) and compresses its mean with Bayesian
arithmetic coding (`tfc_inference.coding.bayesian_ac`) for several lambdas, using the prior
N(0, I) and the posterior's marginal (mean-field) means and std devs.

For each lambda it prints
  * sum_R: the sum of the code points' bits (the paper's rate, which leaves out the
    cost of telling the decoder where each code point ends);
  * ideal_bits: the information content under a code-point distribution fitted on
    other problems drawn from the same process;
  * coded_bits: the size of the real entropy-coded bytes under that distribution
    (whole 32-bit words; decoded and checked);
  * log_p: the log density of the decoded weights under the full-covariance posterior,
    in nats (its maximum, at the posterior mean, is printed once);
  * uniform quantization of the posterior mean with one step size for all weights,
    chosen so its ideal rate under the prior N(0, 1) discretized to the step's bins
    matches ideal_bits, and the log density of its reconstruction.

Usage:
  python examples/bayesian_linear_regression.py [--num_features 64 --num_points 64
      --lambdas 0.001,0.01,0.1,1,10 --seed 0 --noise_std 0.5 --scale_decades 3
      --num_train_problems 50]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import bayesian_ac  # pylint: disable=g-import-not-at-top

flags.DEFINE_integer("num_features", 64, "Number of regression weights (latents).")
flags.DEFINE_integer("num_points", 64,
                     "Number of observations; fewer than --num_features leaves some "
                     "directions of w as uncertain as the prior.")
flags.DEFINE_list("lambdas", ["0.001", "0.01", "0.1", "1", "10"],
                  "Comma-separated rate penalties lambda (per bit) to compress at.")
flags.DEFINE_integer("seed", 0, "Random seed of the synthetic problems.")
flags.DEFINE_float("noise_std", 0.5,
                   "Known standard deviation of the observation noise.")
flags.DEFINE_float("scale_decades", 3.,
                   "Feature scales are 10^u, u ~ U(-d/2, d/2) for this d; 0 makes all "
                   "features alike.")
flags.DEFINE_integer("num_train_problems", 50,
                     "Independent problems whose code points fit the entropy model.")

FLAGS = flags.FLAGS

QUANTILE, CDF = bayesian_ac.standard_normal_prior()  # the prior of w, per weight
MAX_BITS = 24
ALPHABET_LIMIT = 1024
# Code points seen only once in training are cheaper to escape than to model.
MIN_COUNT = 2


def synthesize_problem(num_features, num_points, noise_std, scale_decades, rng):
  """(X [num_points, num_features], y [num_points]) with w ~ N(0, I)."""
  weights = rng.standard_normal(num_features)
  scales = 10. ** rng.uniform(-scale_decades / 2, scale_decades / 2, num_features)
  inputs = rng.standard_normal((num_points, num_features)) * scales
  targets = inputs @ weights + noise_std * rng.standard_normal(num_points)
  return inputs, targets


def exact_posterior(inputs, targets, noise_std):
  """p(w | X, y) = N(mean, precision^-1): (mean [d], covariance [d, d],
  lower Cholesky factor of the precision [d, d])."""
  precision = np.eye(inputs.shape[1]) + inputs.T @ inputs / noise_std ** 2
  covariance = np.linalg.inv(precision)
  mean = covariance @ inputs.T @ targets / noise_std ** 2
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


def compress_at(lmbda, problem, train_posteriors, noise_std):
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
  }


def run(num_features, num_points, lambdas, seed, noise_std=0.5, scale_decades=3.,
        num_train_problems=50, verbose=True):
  """Compresses one synthetic problem at each lambda; returns one dict per lambda."""
  rng = np.random.default_rng(seed)

  def synthesize():
    return synthesize_problem(num_features, num_points, noise_std, scale_decades, rng)

  problem = synthesize()
  # [2 (mean, std), num_train_problems, num_features]
  train_posteriors = np.stack(
      [mean_field(*synthesize(), noise_std) for _ in range(num_train_problems)], axis=1)
  results = [compress_at(float(lmbda), problem, train_posteriors, noise_std)
             for lmbda in lambdas]
  if verbose:
    print_results(results, num_features, num_points)
  return results


def print_results(results, num_features, num_points):
  print(f"{num_features} weights, {num_points} observations; "
        f"log p(posterior mean) = {results[0]['log_prob_at_mean']:.2f} nats")
  print(f"{'lambda':>8} {'sum_R':>6} {'ideal_bits':>10} {'coded_bits':>10} "
        f"{'log_p':>10}   {'unif_step':>9} {'unif_bits':>9} {'unif_log_p':>10}")
  for r in results:
    print(f"{r['lambda']:8g} {r['sum_R']:6d} {r['ideal_bits']:10.1f} "
          f"{r['coded_bits']:10d} {r['log_prob']:10.2f}   {r['uniform_step']:9.4f} "
          f"{r['uniform_bits']:9.1f} {r['uniform_log_prob']:10.2f}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  run(FLAGS.num_features, FLAGS.num_points, [float(value) for value in FLAGS.lambdas],
      FLAGS.seed, FLAGS.noise_std, FLAGS.scale_decades, FLAGS.num_train_problems)


if __name__ == "__main__":
  app.run(main)
