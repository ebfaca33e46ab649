"""Bayesian AC and iREC on a Bayesian linear regression: compress the posterior's weights.

The problems and both coders are in `tfc_inference.evaluation.linear_regression`.

Synthesizes w ~ N(0, I), inputs X whose feature j has N(0, s_j^2) entries with scales
s_j spread over --scale_decades decades (so some weights are pinned down by the data
and others stay as uncertain as the prior), and y = X w + noise (known noise std). It
computes the exact Gaussian posterior p(w | X, y) and compresses its weights two ways:

* Bayesian arithmetic coding (`tfc_inference.coding.bayesian_ac`) of the posterior
  mean, for several lambdas, using the prior N(0, I) and the posterior's marginal
  (mean-field) means and std devs;
* relative entropy coding (`tfc_inference.coding.irec`) of one *sample* of the
  mean-field posterior q = N(mean, diag(1 / precision_jj)) (the KL-optimal diagonal
  Gaussian), costing about KL(q || p) bits. For a range of rates it codes tempered
  posteriors (likelihood^beta, one per --irec_betas value; beta = 1 is the
  posterior itself, smaller beta trusts the data less and costs fewer bits).

For each Bayesian AC lambda it prints
  * sum_R: the sum of the code points' bits (the paper's rate, which leaves out the
    cost of telling the decoder where each code point ends);
  * ideal_bits: the information content under a code-point distribution fitted on
    other problems drawn from the same process;
  * coded_bits: the size of the real entropy-coded bytes under that distribution
    (whole 32-bit words; decoded and checked);
  * log_p: the log density of the decoded weights under the full-covariance posterior,
    in nats (its maximum, at the posterior mean, is printed once);
  * test_mse: the mean squared error of the decoded weights' predictions on
    --num_test_points fresh observations of the same problem (the posterior mean's
    is printed once; the noise alone gives noise_std^2);
  * uniform quantization of the posterior mean with one step size for all weights,
    chosen so its ideal rate under the prior N(0, 1) discretized to the step's bins
    matches ideal_bits, and the log density of its reconstruction.
For each iREC beta: kl_bits of q, coded_bits (the real bytes, decoded and checked),
log_p and test_mse of the decoded sample.

Usage:
  python examples/bayesian_linear_regression.py [--num_features 64 --num_points 64
      --lambdas 0.001,0.01,0.1,1,10 --irec_betas 0.001,0.01,0.1,1 --seed 0
      --noise_std 0.5 --scale_decades 3 --num_train_problems 50
      --num_test_points 1000 --csv results.csv]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import irec  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import linear_regression  # pylint: disable=g-import-not-at-top

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
flags.DEFINE_list("irec_betas", ["0.001", "0.01", "0.1", "1"],
                  "iREC: likelihood temperatures beta in (0, 1] of the coded "
                  "posteriors, one row each (empty: no iREC).")
flags.DEFINE_float("kl_per_block", 8., "iREC: Omega, bits of KL per auxiliary step.")
flags.DEFINE_float("extra_samples", 0.3, "iREC: epsilon, candidate oversampling.")
flags.DEFINE_integer("beams", 5, "iREC: beam width.")
flags.DEFINE_integer("num_test_points", 1000,
                     "Fresh observations of the same problem for the test error.")
flags.DEFINE_string("csv", None, "Also write every row (both methods) to this CSV.")

FLAGS = flags.FLAGS

def print_results(results, irec_results, num_features, num_points):
  reference = (results or irec_results)[0]
  print(f"{num_features} weights, {num_points} observations; "
        f"log p(posterior mean) = {reference['log_prob_at_mean']:.2f} nats, "
        f"test MSE of the posterior mean {reference['test_mse_at_mean']:.4f}")
  if results:
    print("Bayesian AC of the posterior mean:")
    print(f"{'lambda':>8} {'sum_R':>6} {'ideal_bits':>10} {'coded_bits':>10} "
          f"{'log_p':>10} {'test_mse':>9}   {'unif_step':>9} {'unif_bits':>9} "
          f"{'unif_log_p':>10} {'unif_mse':>9}")
  for r in results:
    print(f"{r['lambda']:8g} {r['sum_R']:6d} {r['ideal_bits']:10.1f} "
          f"{r['coded_bits']:10d} {r['log_prob']:10.2f} {r['test_mse']:9.4f}   "
          f"{r['uniform_step']:9.4f} {r['uniform_bits']:9.1f} "
          f"{r['uniform_log_prob']:10.2f} {r['uniform_test_mse']:9.4f}")
  if irec_results:
    print("iREC of a sample of the tempered mean-field posterior:")
    print(f"{'beta':>8} {'kl_bits':>8} {'coded_bits':>10} {'log_p':>10} "
          f"{'test_mse':>9}")
  for r in irec_results:
    print(f"{r['beta']:8g} {r['kl_bits']:8.1f} {r['coded_bits']:10d} "
          f"{r['log_prob']:10.2f} {r['test_mse']:9.4f}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  try:
    betas = [float(value) for value in FLAGS.irec_betas]
    lambdas = [float(value) for value in FLAGS.lambdas]
  except ValueError as error:
    raise app.UsageError(f"--lambdas and --irec_betas take numbers: {error}")
  if any(not 0. < beta <= 1. for beta in betas):
    raise app.UsageError(f"--irec_betas must lie in (0, 1], got {FLAGS.irec_betas}")
  try:
    settings = irec.Settings(kl_per_block=FLAGS.kl_per_block,
                             extra_samples=FLAGS.extra_samples, beams=FLAGS.beams,
                             seed=FLAGS.seed)
  except ValueError as error:
    raise app.UsageError(str(error))
  results, irec_results = linear_regression.run(
      FLAGS.num_features, FLAGS.num_points, lambdas, FLAGS.seed, FLAGS.noise_std,
      FLAGS.scale_decades, FLAGS.num_train_problems, betas, settings,
      FLAGS.num_test_points)
  print_results(results, irec_results, FLAGS.num_features, FLAGS.num_points)
  if FLAGS.csv:
    linear_regression.write_csv(FLAGS.csv, results + irec_results)


if __name__ == "__main__":
  app.run(main)
