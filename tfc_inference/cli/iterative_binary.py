"""The `compress`/`decompress` binary shared by sga.py, map.py, ste.py, unoise.py
and danneal.py (paper methods M1 and A1-A4). Decoding is the base model's decoder:
these methods change only the encoder.
"""

import time

from absl import flags

from tfc_inference.cli import commands
from tfc_inference.cli import common
from tfc_inference.inference import iterative
from tfc_inference.util import metrics
from tfc_inference.util import progress

FLAGS = flags.FLAGS

USAGE = """{title}

Usage:
  python examples/{method}.py compress RUNNAME INPUT [OUTPUT] [--sga_its 2000 ...]
  python examples/{method}.py decompress INPUT [OUTPUT]

RUNNAME is a mbt2018 (or bmshj2018) run in --checkpoint_dir, e.g.
mbt2018-num_filters=64-num_latents=192-lmbda=0.01. INPUT is an image file, a glob, or a .npy batch
of uint8 images; same-sized images are optimized together (--batch_images). The
latents start at the amortized encoder's output and are optimized for --sga_its
iterations; the file is decoded by the unchanged base model.
"""

TITLES = {
    "sga": "Stochastic Gumbel Annealing [M1]: iterative inference with SGA rounding.",
    "map": "MAP ablation [A1]: iterative inference without rounding (keeps the "
           "best rounded iterate).",
    "ste": "Straight-through estimator ablation [A2] (keeps the best rounded "
           "iterate).",
    "unoise": "Uniform-noise ablation [A3]: iterative inference on the training "
              "relaxation.",
    "danneal": "Deterministic annealing ablation [A4]: expected SGA rounding.",
}


def define(method):
  common.define_coding_flags()
  common.define_inference_flags(method)
  return USAGE.format(title=TITLES[method], method=method)


def config_from_flags(method):
  return iterative.InferenceConfig(
      method=method, iterations=FLAGS.sga_its, lr=FLAGS.lr, tau0=FLAGS.tau0,
      annealing_rate=FLAGS.annealing_rate, t0=FLAGS.t0, schedule=FLAGS.schedule,
      lmbda=FLAGS["lambda"].value, eval_every=FLAGS.eval_every, seed=FLAGS.seed,
      schedule_scale=common.schedule_scale_from_flags(),
      compute_dtype=common.compute_dtype())


def latents_fn(method):
  """Runs iterative inference on a batch and returns latents + per-image results."""

  def run(model, x, images, names):
    config = config_from_flags(method)

    def report(p):
      common.say(f"[{method} {','.join(names)}] it {p['iteration']:5d}  "
                 f"tau {p['tau']:.3f}  relaxed {p['relaxed_loss']:.4f}  "
                 f"true {p['true_loss']:.4f}  bpp {p['bpp']:.4f}  "
                 f"psnr {p['psnr']:.2f}  elapsed {p['elapsed']:.0f}s  "
                 f"ETA {progress.format_seconds(p['eta'])}")

    common.say(f"[{method}] {config.iterations} iterations, lr "
               f"{config.learning_rate:g}, schedule {config.schedule} (tau0 "
               f"{config.tau0:g}, t0 {config.t0}, c {config.annealing_rate:g}, "
               f"scale {config.schedule_scale:g}): final tau "
               f"{config.tau(max(0, config.iterations - 1)):.3g}")
    start = time.time()
    result = iterative.IterativeInference(
        model, config, progress_fn=report,
        progress_every=FLAGS.progress_every).run(x, images[0].shape[:2])
    extras = []
    for i in range(len(images)):
      init_psnr = metrics.psnr_from_mse(result.init_mse[i])
      extras.append(dict(
          iterations=config.iterations, lr=config.learning_rate,
          tau0=config.tau0, annealing_rate=config.annealing_rate, t0=config.t0,
          schedule=config.schedule, schedule_scale=config.schedule_scale,
          compute_dtype=config.compute_dtype, final_tau=config.tau(max(0, config.iterations - 1)),
          inference_lmbda=model.lmbda
          if config.lmbda is None else config.lmbda,
          init_bpp=float(result.init_bpp[i]), init_psnr=float(init_psnr),
          init_loss=float(result.init_loss[i]), loss=float(result.loss[i]),
          best_iteration=int(result.best_iteration[i]),
          inference_seconds=(time.time() - start) / len(images),
          trajectory=[[t, true[i]] for t, true, _ in result.trajectory],
          relaxed_trajectory=[[t, relaxed[i]] for t, _, relaxed
                              in result.trajectory[:-1]]))
    return result.y_hat, result.z_hat, extras

  return run


def main(method, usage):
  def run_main(argv):
    common.run_subcommands(argv, {
        "compress": (lambda *a: commands.compress(
            method, ["mbt2018", "bmshj2018"], latents_fn(method), *a), 2, 3),
        "decompress": (commands.decompress, 1, 2),
    }, usage)
  return run_main
