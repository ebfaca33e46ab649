"""Demo: amortized vs. SGA compression of one image with a shipped checkpoint.

Usage:
  python examples/demo.py [--image PATH] [--run RUNNAME] [--sga_its 400]

Compresses the image twice with the same mean-scale checkpoint - once with the
amortized encoder (the base model) and once with Stochastic Gumbel Annealing - writes
both files to --output_dir, decodes them from disk as a receiver would, and prints
bpp (from the real file sizes), PSNR, MS-SSIM and the R-D loss of each. With fewer
iterations than the paper's 2000, the temperature schedule is compressed
proportionally (t0 = 0.35 its, c = 1.3 / (0.65 its)) so that it still anneals to
the paper's final temperature.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import common  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import codec  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import decoding  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import file_format  # pylint: disable=g-import-not-at-top
from tfc_inference.inference import iterative  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.util import demo_image  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top
from tfc_inference.util import metrics  # pylint: disable=g-import-not-at-top
from tfc_inference.util import progress  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("image", None,
                    "Image to compress. Default: matplotlib's sample photo, or a "
                    "generated image if matplotlib is missing.")
flags.DEFINE_string("run", shipped_runs.BASE_RUN,
                    "Mean-scale run to use; if absent, the first shipped mbt2018 run.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Folder of run directories (default: the shipped checkpoints/).")
flags.DEFINE_integer("sga_its", 400, "SGA iterations (paper: 2000).")
flags.DEFINE_string("output_dir", "demo_output",
                    "Where the compressed files and decoded PNGs are written.")
flags.DEFINE_integer("seed", 0, "Seed of the SGA Gumbel noise.")
FLAGS = flags.FLAGS


def pick_run():
  runs = checkpoints.list_runs(FLAGS.checkpoint_dir)
  if FLAGS.run in runs:
    return FLAGS.run
  fallback = [r for r in runs if r.startswith("mbt2018-")]
  if not fallback:
    common.fail(f"no mbt2018 run in {FLAGS.checkpoint_dir or 'checkpoints/'}")
  print(f"run {FLAGS.run} not found; using {fallback[0]}")
  return fallback[0]


def main(argv):
  del argv
  run = pick_run()
  model, _, run_name = checkpoints.load_run(run, FLAGS.checkpoint_dir)
  if FLAGS.image:
    name, image = image_io.expand_inputs(FLAGS.image, warn=common.warn)[0]
  else:
    name, image = demo_image.default_image(warn=common.warn)
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  print(f"image {name} {image.shape[1]}x{image.shape[0]}, run {run_name}")
  x = codec.to_batch(image)
  rows = []

  start = time.time()
  y_hat, z_hat = codec.amortized_latents(model, x)
  rows.append(("amortized (base)", "mbt2018", y_hat, z_hat, time.time() - start))

  its = FLAGS.sga_its
  config = iterative.InferenceConfig(
      method="sga", iterations=its, t0=int(0.35 * its),
      annealing_rate=1.3 / max(1., 0.65 * its), seed=FLAGS.seed)
  print(f"SGA: {its} iterations (tau0 {config.tau0}, t0 {config.t0}, "
        f"c {config.annealing_rate:.2e})")
  start = time.time()
  result = iterative.IterativeInference(
      model, config, progress_every=max(1, its // 4),
      progress_fn=lambda p: print(
          f"  it {p['iteration']:4d}  tau {p['tau']:.3f}  true loss "
          f"{p['true_loss']:.4f}  elapsed {p['elapsed']:.0f}s  "
          f"ETA {progress.format_seconds(p['eta'])}",
          flush=True)).run(x, image.shape[:2])
  rows.append(("SGA [M1]", "sga", result.y_hat, result.z_hat, time.time() - start))

  print(f"\n{'method':18s} {'bytes':>7s} {'bpp':>7s} {'PSNR':>7s} {'MS-SSIM':>8s} "
        f"{'loss':>7s} {'encode s':>9s}")
  for label, method, y_hat, z_hat, seconds in rows:
    y_hat, z_hat = codec.requantize(model, y_hat, z_hat)
    data = codec.encode_range_coded(model, run_name, method, image, y_hat, z_hat)
    path = os.path.join(FLAGS.output_dir, f"{name}.{method}.tfci")
    with open(path, "wb") as f:
      f.write(data)
    with open(path, "rb") as f:  # decode from disk, as a receiver would
      decoded, _ = decoding.decode_parsed(
          file_format.CompressedFile.from_bytes(f.read()), model)
    image_io.write_png(path[:-len(".tfci")] + ".png", decoded)
    bpp = metrics.bits_per_pixel(len(data), *image.shape[:2])
    mse = metrics.mse(image, decoded)
    print(f"{label:18s} {len(data):7d} {bpp:7.4f} {metrics.psnr(image, decoded):7.2f} "
          f"{metrics.ms_ssim(image, decoded):8.4f} {bpp + model.lmbda * mse:7.4f} "
          f"{seconds:9.1f}")
  print(f"\nfiles and decoded PNGs in {FLAGS.output_dir}/ "
        f"(loss = bpp + {model.lmbda:g} * MSE)")


if __name__ == "__main__":
  app.run(main)
