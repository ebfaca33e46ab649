"""Learning curve of a Bayesian AC VAE: the PSNR of its reconstruction from the
posterior means and its KL, on the first Kodak images.

  python benchmarks/vae_learning_curve.py --run bls2017_vae-num_filters=128-sigma2=0.001

Reads the run's exported weights (`weights.npz`, written every few thousand
training steps and at each stop) and appends one row (steps, means PSNR in dB as
the mean over images, KL in bits per pixel) to
RESULTS_DIR/<run>.csv, unless that step count is there already. The means PSNR is
the model's ceiling for every coding method of the one model (Bayesian AC at its
smallest lambda approaches it); the KL is what the training objective pays for
the latents.
"""

import csv
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import vae  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", "bls2017_vae-num_filters=64-sigma2=0.001", "The VAE run.")
flags.DEFINE_string("checkpoint_dir", None, "Folder of runs (default: checkpoints/).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Image glob.")
flags.DEFINE_integer("max_images", 8, "First N images of the glob.")
flags.DEFINE_string("results_dir", "results/bayesian_ac/learning_curve",
                    "Where <run>.csv is appended to.")
FLAGS = flags.FLAGS

FIELDS = ("steps", "means_psnr", "kl_bpp", "images")


def measure(model, images):
  """(mean PSNR of synthesis(mu) in dB, mean KL in bits per pixel) over `images`
  (uint8 [H, W, 3], sides multiples of 16)."""
  psnrs, kls = [], []
  for image in images:
    x = tf.constant(image[None], tf.float32)
    mu, sigma = model.posterior(x)
    x_hat = model.synthesize(mu)[:, :image.shape[0], :image.shape[1]]
    mse = float(tf.reduce_mean(tf.math.squared_difference(x, x_hat)))
    psnrs.append(10. * np.log10(255. ** 2 / mse))
    kl = tf.reduce_sum(vae.kl_standard_normal(mu, sigma)) / np.log(2.)
    kls.append(float(kl) / (image.shape[0] * image.shape[1]))
  return float(np.mean(psnrs)), float(np.mean(kls))


def main(_):
  model, _, config, run = vae.load_run(FLAGS.run, FLAGS.checkpoint_dir)
  images = [image for _, image in image_io.load_image_set(FLAGS.images,
                                                           FLAGS.max_images)]
  path = os.path.join(FLAGS.results_dir, f"{run}.csv")
  rows = []
  if os.path.exists(path):
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
  steps = int(config.get("steps", 0))
  if any(int(r["steps"]) == steps for r in rows):
    print(f"{run}: step {steps} is in {path} already")
    return
  psnr, kl = measure(model, images)
  rows.append(dict(steps=steps, means_psnr=f"{psnr:.4f}", kl_bpp=f"{kl:.4f}",
                   images=len(images)))
  rows.sort(key=lambda r: int(r["steps"]))
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  with open(path + ".tmp", "w", newline="") as f:
    writer = csv.DictWriter(f, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  os.replace(path + ".tmp", path)
  print(f"{run}: step {steps}  means PSNR {psnr:.2f} dB  KL {kl:.4f} bpp "
        f"({len(images)} images) -> {path}")


if __name__ == "__main__":
  app.run(main)
