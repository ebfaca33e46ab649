"""Markdown table of the methods in one evaluation folder, against a reference.

Usage:
  python benchmarks/rd_table.py --results_dir results/kodak_crops \
      [--reference mbt2018] [--published PATH.csv ...]

For every method with per-image JSON in --results_dir (written by
`examples/evaluate.py run`) prints one row: lambdas x images, BD-rate and
BD-PSNR against the reference method's curve (same folder, so the same images,
crops and lambdas), optionally BD-rate against published curves, and the mean
R-D loss (bpp + lambda * MSE, MSE on 0-255 pixels, net bpp for bits-back
methods) at every lambda, the objective the iterative methods minimize.
Nothing here runs a model: it reads JSON only.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.evaluation import rd_curves  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import runner  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("results_dir", None, "Folder of METHOD/RUN/IMAGE.json.")
flags.DEFINE_string("reference", "mbt2018",
                    "Method whose curve the BD-rates are relative to.")
flags.DEFINE_multi_string("published", [],
                          "Published `bpp, psnr` CSV to compare against too.")
flags.mark_flag_as_required("results_dir")
FLAGS = flags.FLAGS


def curve(records):
  """Per-lambda means: (lambdas, bpp, psnr, loss, images per lambda)."""
  lambdas = sorted({float(r["lmbda"]) for r in records})
  rows = []
  for lmbda in lambdas:
    group = [r for r in records if float(r["lmbda"]) == lmbda]
    loss = np.mean([r["bpp"] + lmbda * r["mse"] for r in group])
    rows.append((lmbda, np.mean([r["bpp"] for r in group]),
                 np.mean([r["psnr"] for r in group]), loss, len(group)))
  return [np.array(column) for column in zip(*rows)]


def _bd(reference, other):
  try:
    return (rd_curves.bd_rate(reference[1], reference[2], other[1], other[2]),
            rd_curves.bd_psnr(reference[1], reference[2], other[1], other[2]))
  except ValueError:  # no PSNR overlap
    return float("nan"), float("nan")


def main(_):
  records = runner.load_results(FLAGS.results_dir)
  if FLAGS.reference not in records:
    raise app.UsageError(f"no {FLAGS.reference} results in {FLAGS.results_dir}")
  curves = {method: curve(rows) for method, rows in records.items()}
  reference = curves[FLAGS.reference]
  published = [(os.path.basename(p), rd_curves.read_curve(p))
               for p in FLAGS.published]
  lambdas = reference[0]
  header = (["method", "lambdas x images", f"BD-rate vs {FLAGS.reference}",
             "BD-PSNR"] + [f"vs {name}" for name, _ in published]
            + [f"loss @ {lmbda:g}" for lmbda in lambdas])
  print("| " + " | ".join(header) + " |")
  print("|" + " --- |" * len(header))
  order = [FLAGS.reference] + sorted(m for m in curves if m != FLAGS.reference)
  for method in order:
    lmbdas, bpp, psnr, loss, counts = curves[method]
    rate, gain = _bd(reference, curves[method])
    cells = [f"`{method}`", f"{len(lmbdas)} x {int(counts.min())}",
             f"{rate:+.1f}%", f"{gain:+.2f} dB"]
    for _, (pub_bpp, pub_psnr) in published:
      cells.append(f"{_bd((None, pub_bpp, pub_psnr), curves[method])[0]:+.1f}%")
    for lmbda in lambdas:
      match = np.flatnonzero(np.isclose(lmbdas, lmbda))
      cells.append(f"{loss[match[0]]:.3f}" if match.size else "-")
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
  app.run(main)
