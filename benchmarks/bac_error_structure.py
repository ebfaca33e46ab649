"""Where Bayesian AC loses against the VAE's own posterior: the structure of its
quantization errors.

  python benchmarks/bac_error_structure.py --run bls2017_vae-num_filters=128-sigma2=0.001

For each image and lambda it reconstructs (uint8, as a decoder would) from:
  means     the posterior means mu (the model's ceiling);
  sample    one posterior sample mu + sigma * eps (what an ideal relative-entropy
            coder would send, at about the KL);
  bac       Bayesian AC's code points (what the files hold);
  signs     mu + s_c * (bac - mu), with one random sign s_c per latent channel:
            the same error magnitudes, their coherence across channels broken;
  unshrunk  mu + the Bayesian AC error minus, per channel, its mean and its
            least-squares linear part in (mu - the channel's median): the error
            without the rate penalty's pull towards the prior's short code points.
and reports their PSNR (dB, mean over images), the errors' power in posterior
units (mean ((bac - mu) / sigma)^2; a sample has 1) and the median over channels
of that linear shrinkage slope. If `signs` and `unshrunk` are far above `bac`,
Bayesian AC's loss is the coherent shrinkage of many channels at once, which
Eq. 9 (one latent at a time) does not see, rather than the error's size.
Writes RESULTS_DIR/<run>/error_structure.json.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import bayesian_ac_image  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", "bls2017_vae-num_filters=64-sigma2=0.001", "The VAE run.")
flags.DEFINE_string("checkpoint_dir", None, "Folder of runs (default: checkpoints/).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Image glob.")
flags.DEFINE_integer("max_images", 8, "First N images of the glob.")
flags.DEFINE_list("lambdas", ["1", "3"], "Bayesian AC lambdas.")
flags.DEFINE_integer("seed", 0, "Seed of the sample and of the channel signs.")
flags.DEFINE_string("results_dir", "results/bayesian_ac",
                    "The JSON goes to RESULTS_DIR/<run>/error_structure.json.")
FLAGS = flags.FLAGS

VARIANTS = ("means", "sample", "bac", "signs", "unshrunk")


def psnr(reconstruction, image):
  mse = np.mean(np.square(reconstruction.astype(np.float64) - image))
  return 10. * np.log10(255. ** 2 / mse)


def without_shrinkage(mu, error):
  """`error` [h, w, C] minus, per channel, its mean and its least-squares linear
  part in mu minus the channel's median; and the median over channels of the
  slopes (negative: pulled towards the median)."""
  centered = mu - np.median(mu.reshape(-1, mu.shape[-1]), axis=0)
  centered -= centered.mean(axis=(0, 1))
  slopes = (np.sum(error * centered, axis=(0, 1)) /
            np.maximum(np.sum(centered * centered, axis=(0, 1)), 1e-12))
  residual = error - error.mean(axis=(0, 1)) - slopes * centered
  return residual, float(np.median(slopes))


def latent_variants(posterior, values, rng):
  """The latent values of each variant, by name; plus the error statistics."""
  mu, sigma = posterior.mu, posterior.sigma
  error = values - mu
  signs = rng.choice([-1., 1.], (1, 1, mu.shape[-1]))
  residual, slope = without_shrinkage(mu, error)
  latents = dict(means=mu, sample=mu + sigma * rng.standard_normal(mu.shape),
                 bac=values, signs=mu + signs * error, unshrunk=mu + residual)
  stats = dict(error_power=float(np.mean(np.square(error / sigma))),
               shrink_slope=slope)
  return latents, stats


def main(_):
  codec = bayesian_ac_image.ImageCodec.load(FLAGS.run, FLAGS.checkpoint_dir)
  images = image_io.load_image_set(FLAGS.images, FLAGS.max_images)
  lambdas = [float(l) for l in FLAGS.lambdas]
  rows = {l: {k: [] for k in VARIANTS + ("error_power", "shrink_slope", "bpp")}
          for l in lambdas}
  rng = np.random.default_rng(FLAGS.seed)
  for name, image in images:
    posterior = codec.analyze(image)
    for lmbda in lambdas:
      quantized = codec.quantize(posterior, "bayesian_ac", lmbda)
      latents, stats = latent_variants(posterior, quantized.values, rng)
      for variant, values in latents.items():
        rows[lmbda][variant].append(
            psnr(codec.reconstruct(values, image.shape[:2]), image))
      for key, value in stats.items():
        rows[lmbda][key].append(value)
      num_bits = 8 * len(codec.encode(posterior, quantized))
      rows[lmbda]["bpp"].append(num_bits / (image.shape[0] * image.shape[1]))
    print(f"{name} done", flush=True)
  summary = {f"{l:g}": {k: float(np.mean(v)) for k, v in rows[l].items()}
             for l in lambdas}
  print(f"{codec.run_name}, {len(images)} images (PSNR in dB, mean over images)")
  print("lambda   bpp  " + "  ".join(f"{v:>8}" for v in VARIANTS) +
        "  error power  shrink slope")
  for key, s in summary.items():
    print(f"{key:>6} {s['bpp']:5.3f}  " +
          "  ".join(f"{s[v]:8.2f}" for v in VARIANTS) +
          f"  {s['error_power']:11.3f}  {s['shrink_slope']:12.3f}")
  path = os.path.join(FLAGS.results_dir, codec.run_name, "error_structure.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(dict(run=codec.run_name, images=[n for n, _ in images],
                   seed=FLAGS.seed, lambdas=summary), f, indent=1)
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
