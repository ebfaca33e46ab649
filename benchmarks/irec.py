"""iREC's coding cost, sample quality and speed: the beam-search ablation.

  python benchmarks/irec.py synthetic [--omegas 4,6,8,10 --beams 1,5,20]
  python benchmarks/irec.py images --images '../shared/data/kodak/*.png' \\
      [--crop 256 --max_images 4 --omegas 6,8 --beams 1,5]
  python benchmarks/irec.py regression [--problems 20 --omegas 8 --beams 5]

synthetic  a 2000-dimensional Gaussian posterior (four groups of 500 dimensions,
           from nearly the prior to very informative, sigma 0.98 / 0.5 / 0.1 /
           0.02) coded against N(0, 1) at every (Omega, beams): index bits over
           KL, the chosen sample's log q/p against the KL (a typical posterior
           sample has log q/p = KL on average: a shortfall means the sample is
           atypical), standardized residuals, encode and decode seconds.
images     iREC on the shipped Bayesian AC VAE against Bayesian AC at the same
           model's lambdas (bpp from real files, PSNR of the decoded image).
regression iREC and Bayesian AC on Bayesian linear-regression posteriors
           (`evaluation.linear_regression`, 64 weights, 64 observations): coded
           bits and test MSE, means over --problems problems (seeds 0..N-1);
           iREC codes tempered posteriors (--betas), Bayesian AC the posterior
           mean at --regression_lambdas.

Writes RESULTS_DIR/synthetic.csv, images.csv or regression.csv and prints it.
"""

import csv
import glob
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
# TensorFlow must be imported before app.run (see transforms.check_graph_tensor_equality).
import tensorflow  # pylint: disable=g-import-not-at-top,unused-import

from tfc_inference.coding import irec  # pylint: disable=g-import-not-at-top

flags.DEFINE_list("omegas", ["4", "6", "8", "10"], "kl_per_block values (bits).")
flags.DEFINE_list("beams", ["1", "5", "20"], "Beam widths.")
flags.DEFINE_float("extra_samples", 0.3, "epsilon.")
flags.DEFINE_integer("block_steps", 4, "Auxiliary steps per block.")
flags.DEFINE_string("results_dir", "results/irec", "Output folder.")
flags.DEFINE_string("images", None, "images: image glob (e.g. Kodak).")
flags.DEFINE_integer("crop", 256, "images: center crop size (0: whole images).")
flags.DEFINE_integer("max_images", 4, "images: first N images of the glob.")
flags.DEFINE_string("run", "bls2017_vae-num_filters=64-sigma2=0.001",
                    "images: the VAE run.")
flags.DEFINE_list("bac_lambdas", ["0.1", "0.3", "1", "3"],
                  "images: Bayesian AC lambdas to compare with.")
flags.DEFINE_integer("problems", 20, "regression: problems (seeds) averaged.")
flags.DEFINE_list("betas", ["0.001", "0.01", "0.1", "0.3", "1"],
                  "regression: likelihood temperatures of iREC's posteriors.")
flags.DEFINE_list("regression_lambdas", ["0.001", "0.01", "0.1", "1", "10"],
                  "regression: Bayesian AC lambdas.")
FLAGS = flags.FLAGS


def _write(name, rows):
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  path = os.path.join(FLAGS.results_dir, name)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
      writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                       for k, v in row.items()})
  with open(path) as f:
    print(f.read())
  print(f"wrote {path}")


def synthetic():
  rng = np.random.default_rng(0)
  sigma = np.repeat([0.98, 0.5, 0.1, 0.02], 500)
  mu = rng.normal(0., 1., sigma.size) * np.repeat([0.05, 1., 1., 1.], 500)
  groups = np.repeat(np.arange(4), 500)
  rows = []
  for omega in map(float, FLAGS.omegas):
    for beams in map(int, FLAGS.beams):
      settings = irec.Settings(omega, FLAGS.extra_samples, beams, seed=1,
                               block_steps=FLAGS.block_steps)
      start = time.time()
      data, sample, info = irec.compress(mu, sigma, 0., 1., settings, groups)
      encode_seconds = time.time() - start
      start = time.time()
      decoded = irec.decompress(data, 0., 1., mu.shape, settings, groups)
      decode_seconds = time.time() - start
      assert np.array_equal(decoded, sample)
      residual = (sample - mu) / sigma
      rows.append(dict(
          kl_per_block=omega, beams=beams, extra_samples=FLAGS.extra_samples,
          kl_bits=info["kl_bits"], index_bits=info["index_bits"],
          index_over_kl=info["index_bits"] / info["kl_bits"],
          log_weight_bits=info["log_weight_bits"],
          shortfall_bits=info["kl_bits"] - info["log_weight_bits"],
          residual_std=float(residual.std()),
          residual_std_informative=float(residual[groups == 3].std()),
          steps=info["steps"], encode_seconds=encode_seconds,
          decode_seconds=decode_seconds))
      print(rows[-1], flush=True)
  _write("synthetic.csv", rows)


def images():
  from tfc_inference.coding import irec_image  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  paths = sorted(glob.glob(FLAGS.images or ""))[:FLAGS.max_images]
  if not paths:
    raise app.UsageError(f"--images {FLAGS.images!r} matches no file")
  codec = irec_image.IRECImageCodec.load(FLAGS.run)
  inputs = []
  for path in paths:
    image = image_io.read_image(path)
    if FLAGS.crop:
      top = (image.shape[0] - FLAGS.crop) // 2
      left = (image.shape[1] - FLAGS.crop) // 2
      image = image[top:top + FLAGS.crop, left:left + FLAGS.crop]
    inputs.append((os.path.splitext(os.path.basename(path))[0], image))
  rows = []

  def add(method, setting, results):
    rows.append(dict(method=method, setting=setting, images=len(results),
                     **{k: float(np.mean([r[k] for r in results]))
                        for k in ("bpp", "kl_bpp", "psnr", "ms_ssim", "seconds",
                                  "decode_seconds")}))
    print(rows[-1], flush=True)

  for lmbda in map(float, FLAGS.bac_lambdas):
    add("bayesian_ac", f"lambda={lmbda:g}",
        [codec.codec.compress(image, "bayesian_ac", lmbda, name=name)[1]
         for name, image in inputs])
  for omega in map(float, FLAGS.omegas):
    for beams in map(int, FLAGS.beams):
      settings = irec.Settings(omega, FLAGS.extra_samples, beams, seed=0,
                               block_steps=FLAGS.block_steps)
      add("irec", f"omega={omega:g},beams={beams}",
          [codec.compress(image, settings, name=name)[1] for name, image in inputs])
  _write("images.csv", rows)


def regression():
  from tfc_inference.evaluation import linear_regression  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  lambdas = [float(v) for v in FLAGS.regression_lambdas]
  betas = [float(v) for v in FLAGS.betas]
  keys = ("coded_bits", "kl_bits", "ideal_bits", "test_mse", "test_mse_at_mean",
          "log_prob", "uniform_bits", "uniform_test_mse")
  rows = []
  for omega in map(float, FLAGS.omegas):
    for beams in map(int, FLAGS.beams):
      per_setting = {}
      for seed in range(FLAGS.problems):
        settings = irec.Settings(omega, FLAGS.extra_samples, beams, seed=seed,
                                 block_steps=FLAGS.block_steps)
        results, irec_results = linear_regression.run(
            64, 64, lambdas if not rows else [], seed, irec_betas=betas,
            irec_settings=settings)
        for r in results:
          per_setting.setdefault(("bayesian_ac", f"lambda={r['lambda']:g}"), []).append(r)
        for r in irec_results:
          per_setting.setdefault(
              ("irec", f"beta={r['beta']:g},omega={omega:g},beams={beams}"), []
          ).append(r)
      for (method, setting), results in per_setting.items():
        rows.append(dict(method=method, setting=setting, problems=len(results),
                         **{k: float(np.mean([r[k] for r in results]))
                            for k in keys if k in results[0]}))
        print(rows[-1], flush=True)
  columns = ["method", "setting", "problems", *keys]
  _write("regression.csv", [{c: row.get(c, "") for c in columns} for row in rows])


COMMANDS = {"synthetic": synthetic, "images": images, "regression": regression}


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"give one command: {', '.join(COMMANDS)}")
  COMMANDS[argv[1]]()


if __name__ == "__main__":
  app.run(main)
