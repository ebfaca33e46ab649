"""The binary shared by bb_sga.py [M2], bb_no_sga.py [A5] and bb_plain.py [A6]."""

import time

from absl import flags
import tensorflow as tf

from tfc_inference.cli import commands
from tfc_inference.cli import common
from tfc_inference.inference import bbvi
from tfc_inference.util import metrics
from tfc_inference.util import progress

FLAGS = flags.FLAGS

USAGE = """{title}

Usage:
  python examples/{method}.py compress RUNNAME INPUT [OUTPUT] [--side_info FILE]
  python examples/{method}.py decompress INPUT [OUTPUT] [--side_info_out FILE]

RUNNAME is a mbt2018_bb run (e.g. mbt2018_bb-num_filters=64-num_latents=192-lmbda=0.01).
Without --side_info the side information is random bits from --seed (the paper's
worst case); decompress recovers it and verifies its checksum. Results report
net_bpp = (file bits - side-information bits) / pixels.
"""

TITLES = {
    "bb_sga": "SGA + lossy bits-back coding [M2]: joint SGA over y and BBVI over "
              "q(z), then reproducible BBVI (Algorithm 1).",
    "bb_no_sga": "Bits-back without SGA [A5]: y_hat = round(amortized y); q(z) from "
                 "reproducible BBVI.",
    "bb_plain": "Bits-back without iterative inference [A6]: amortized y_hat and "
                "amortized q(z | y_hat).",
}


def define(method):
  common.define_coding_flags()
  common.define_bits_back_flags()
  flags.DEFINE_integer("sga_its", 2000,
                       "Iterations of the joint SGA + BBVI optimization (bb_sga).")
  flags.DEFINE_integer("bbvi_its", 0 if method == "bb_plain" else 2000,
                       "Iterations of reproducible BBVI over q(z | y_hat), run by "
                       "encoder and decoder (0: amortized q, as bb_plain).")
  flags.DEFINE_float("lr", 5e-3, "Adam learning rate of the joint optimization.")
  flags.DEFINE_float("bbvi_lr", 3e-3, "Adam learning rate of reproducible BBVI.")
  flags.DEFINE_float("annealing_rate", 1e-3,
                     "c in tau(t) = min(tau0, tau0 * exp(-c * (t - t0))).")
  flags.DEFINE_integer("t0", 700, "t0 of the temperature schedule.")
  flags.DEFINE_float("tau0", 0.5, "Initial temperature.")
  common.define_schedule_scale_flag()
  common.define_compute_dtype_flag()
  flags.DEFINE_float("lambda", None,
                     "R-D trade-off of the inference objective (default: the run's).")
  flags.DEFINE_integer("progress_every", 100, "Print progress every N iterations.")
  return USAGE.format(title=TITLES[method], method=method)


def latents_fn(method):

  def run(model, x, image, name):
    if method == "bb_sga":
      config = bbvi.BitsBackConfig(
          iterations=FLAGS.sga_its, lr=FLAGS.lr, tau0=FLAGS.tau0,
          annealing_rate=FLAGS.annealing_rate, t0=FLAGS.t0,
          lmbda=FLAGS["lambda"].value, seed=FLAGS.seed,
          schedule_scale=common.schedule_scale_from_flags(),
          compute_dtype=common.compute_dtype())
      final_tau = config.tau(max(0, config.iterations - 1))
      common.say(f"[{method}] {config.iterations} iterations, lr {config.lr:g}, "
                 f"schedule (tau0 {config.tau0:g}, t0 {config.t0}, c "
                 f"{config.annealing_rate:g}, scale {config.schedule_scale:g}): "
                 f"final tau {final_tau:.3g}")

      def report(p):
        common.say(f"[{method} {name}] it {p['iteration']:5d}  tau {p['tau']:.3f}  "
                   f"relaxed {p['relaxed_loss']:.4f}  nelbo(rounded) "
                   f"{p['true_loss']:.4f}  elapsed {p['elapsed']:.0f}s  "
                   f"ETA {progress.format_seconds(p['eta'])}")

      start = time.time()
      y_hat, info = bbvi.BitsBackInference(
          model, config, report, FLAGS.progress_every).run(x, image.shape[:2])
      return y_hat, dict(
          iterations=config.iterations, tau0=config.tau0, t0=config.t0,
          annealing_rate=config.annealing_rate,
          schedule_scale=config.schedule_scale, final_tau=final_tau,
          compute_dtype=config.compute_dtype,
          init_loss=float(info["init_loss"][0]),
          init_bpp=float(info["init_bpp"][0]),
          init_psnr=float(metrics.psnr_from_mse(info["init_mse"][0])),
          nelbo_trajectory=[[t, v[0]] for t, v in info["nelbo_trajectory"]],
          inference_seconds=time.time() - start)
    y, _ = model.analyze(x)
    return tf.round(y).numpy(), {}

  return run


def main(method, usage):
  def run_main(argv):
    common.run_subcommands(argv, {
        "compress": (lambda *a: commands.compress_bits_back(
            method, latents_fn(method), *a, bbvi_its=FLAGS.bbvi_its,
            bbvi_lr=FLAGS.bbvi_lr), 2, 3),
        "decompress": (commands.decompress, 1, 2),
    }, usage)
  return run_main
