"""Benchmark for iterative inference (paper Figure 3 and the discretization gap).

Runs SGA and the ablations MAP, STE, uniform noise and deterministic annealing from
the same amortized initialization on Kodak images with one mean-scale checkpoint,
and for every (method, image):
  * the true R-D loss (bpp + lambda * MSE of the rounded latents) along the
    iterations, and the relaxed loss of the same iterates;
  * a real file, decoded again and compared with the encoder's reconstruction;
  * real vs. estimated bpp.
Per-(method, image) JSON goes to --results_dir (finished ones are skipped, so an
interrupted run resumes). Prints a summary table and writes a Figure-3-like PNG.

  python benchmarks/iterative_inference.py --images '../shared/data/kodak/*.png'
"""

import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import codec  # pylint: disable=g-import-not-at-top
from tfc_inference.inference import iterative  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top
from tfc_inference.util import progress  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", shipped_runs.BASE_RUN, "Mean-scale run.")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Glob of test images.")
flags.DEFINE_integer("num_images", 24, "Use the first N images of the glob.")
flags.DEFINE_string("crop", None,
                    "Optional HxW center crop (e.g. 256x256) to cut the cost; the "
                    "summary says so.")
flags.DEFINE_list("methods", list(iterative.METHODS), "Methods to compare.")
flags.DEFINE_integer("sga_its", 2000, "Iterations per method.")
flags.DEFINE_integer("eval_every", 10, "True-loss evaluation interval.")
flags.DEFINE_integer("batch_images", 4, "Same-sized images optimized jointly.")
flags.DEFINE_string("results_dir", "results/iterative_inference",
                    "Per-(method, image) JSON, summary.json and the plot.")
flags.DEFINE_integer("seed", 0, "Seed.")
FLAGS = flags.FLAGS


def load_images():
  return image_io.load_image_set(FLAGS.images, FLAGS.num_images, FLAGS.crop)


def run_method(model, run_name, method, batch, out_dir):
  names = [n for n, _ in batch]
  x = tf.concat([codec.to_batch(im) for _, im in batch], 0)
  config = iterative.InferenceConfig(method=method, iterations=FLAGS.sga_its,
                                     eval_every=FLAGS.eval_every, seed=FLAGS.seed)
  start = time.time()
  result = iterative.IterativeInference(
      model, config, progress_every=500,
      progress_fn=lambda p: print(
          f"  [{method} {','.join(names)}] it {p['iteration']} tau {p['tau']:.3f} "
          f"relaxed {p['relaxed_loss']:.4f} true {p['true_loss']:.4f} "
          f"{p['elapsed']:.0f}s ETA {progress.format_seconds(p['eta'])}",
          flush=True)).run(
              x, batch[0][1].shape[:2])
  seconds = time.time() - start
  for i, (name, image) in enumerate(batch):
    y_hat, z_hat = codec.requantize(model, result.y_hat[i:i + 1],
                                    result.z_hat[i:i + 1])
    estimate = model.true_rd(x[i:i + 1], y_hat, z_hat, valid_shape=image.shape[:2])
    data = codec.encode_range_coded(model, run_name, method, image, y_hat, z_hat)
    measured, _ = codec.verify_and_measure(  # raises if the file decodes wrongly
        model, image, data, y_hat.numpy(), codec.range_coded_decode_fn)
    record = dict(
        method=method, image=name, height=image.shape[0], width=image.shape[1],
        iterations=FLAGS.sga_its, lr=config.learning_rate, lmbda=model.lmbda,
        tau0=config.tau0, annealing_rate=config.annealing_rate, t0=config.t0,
        init_loss=float(result.init_loss[i]), loss=float(result.loss[i]),
        init_bpp=float(result.init_bpp[i]), est_bpp=float(estimate["bpp"][0]),
        bpp=measured["bpp"], psnr=measured["psnr"], ms_ssim=measured["ms_ssim"],
        file_loss=measured["bpp"] + model.lmbda * measured["mse"],
        decoded_exactly=True, seconds=seconds / len(batch),
        best_iteration=int(result.best_iteration[i]),
        trajectory=[[t, true[i], relaxed[i]] for t, true, relaxed
                    in result.trajectory])
    with open(os.path.join(out_dir, f"{method}-{name}.json"), "w") as f:
      json.dump(record, f)


def summarize(records):
  print(f"\n{'method':8s} {'n':>3s} {'init loss':>9s} {'true loss':>9s} "
        f"{'relaxed':>8s} {'gap':>8s} {'bpp':>7s} {'est bpp':>7s} {'PSNR':>6s} "
        f"{'improved':>8s}")
  summary = {}
  for method in FLAGS.methods:
    rs = [r for r in records if r["method"] == method]
    if not rs:
      continue
    # Relaxed loss of the last evaluated iterate (NaN at the final row).
    relaxed = [next(row[2] for row in reversed(r["trajectory"])
                    if not np.isnan(row[2])) for r in rs]
    true_last = [next(row[1] for row in reversed(r["trajectory"])
                      if not np.isnan(row[2])) for r in rs]
    entry = dict(
        n=len(rs), init_loss=np.mean([r["init_loss"] for r in rs]),
        loss=np.mean([r["loss"] for r in rs]), relaxed=np.mean(relaxed),
        gap=np.mean(np.array(true_last) - np.array(relaxed)),
        bpp=np.mean([r["bpp"] for r in rs]), est_bpp=np.mean([r["est_bpp"] for r in rs]),
        psnr=np.mean([r["psnr"] for r in rs]),
        improved=sum(r["loss"] < r["init_loss"] for r in rs))
    summary[method] = {k: float(v) for k, v in entry.items()}
    print(f"{method:8s} {entry['n']:3d} {entry['init_loss']:9.4f} {entry['loss']:9.4f} "
          f"{entry['relaxed']:8.4f} {entry['gap']:8.4f} {entry['bpp']:7.4f} "
          f"{entry['est_bpp']:7.4f} {entry['psnr']:6.2f} "
          f"{entry['improved']:>4d}/{entry['n']}")
  return summary


def plot(records, path):
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("matplotlib missing: no plot")
    return
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for method in FLAGS.methods:
    rs = [r for r in records if r["method"] == method]
    if not rs:
      continue
    its = np.array([row[0] for row in rs[0]["trajectory"]])
    true = np.mean([[row[1] for row in r["trajectory"]] for r in rs], axis=0)
    relaxed = np.mean([[row[2] for row in r["trajectory"]] for r in rs], axis=0)
    line, = ax.plot(its, true, label=f"{method} (true)")
    ax.plot(its[:-1], relaxed[:-1], "--", color=line.get_color(), alpha=0.5,
            label=f"{method} (relaxed)")
  ax.set_xlabel("iteration")
  ax.set_ylabel("R-D loss (bpp + lambda MSE)")
  ax.set_title(f"Iterative inference, {len(records) // max(1, len(FLAGS.methods))} "
               f"image(s), {FLAGS.run}")
  lo = min(min(row[1] for row in r["trajectory"]) for r in records)
  hi = max(r["init_loss"] for r in records)
  ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv):
  del argv
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  model, _, run_name = checkpoints.load_run(FLAGS.run, FLAGS.checkpoint_dir)
  images = load_images()
  for method in FLAGS.methods:
    todo = [(n, im) for n, im in images if not os.path.exists(
        os.path.join(FLAGS.results_dir, f"{method}-{n}.json"))]
    by_shape = {}
    for item in todo:
      by_shape.setdefault(item[1].shape, []).append(item)
    for group in by_shape.values():
      for i in range(0, len(group), FLAGS.batch_images):
        run_method(model, run_name, method, group[i:i + FLAGS.batch_images],
                   FLAGS.results_dir)
  names = {n for n, _ in images}
  records = []
  for path in sorted(glob.glob(os.path.join(FLAGS.results_dir, "*.json"))):
    with open(path) as f:
      record = json.load(f)
    if isinstance(record, dict) and record.get("image") in names \
        and record.get("method") in FLAGS.methods:
      records.append(record)
  print(f"run {run_name}, {len(names)} image(s)"
        + (f", center crops {FLAGS.crop}" if FLAGS.crop else "")
        + f", {FLAGS.sga_its} iterations")
  summary = summarize(records)
  with open(os.path.join(FLAGS.results_dir, "summary.json"), "w") as f:
    json.dump(dict(run=run_name, images=sorted(names), crop=FLAGS.crop,
                   iterations=FLAGS.sga_its, methods=summary), f, indent=2)
  plot(records, os.path.join(FLAGS.results_dir, "figure3.png"))


if __name__ == "__main__":
  app.run(main)
