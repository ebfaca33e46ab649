"""Measures every shipped run on Kodak (amortized compression, real files) and
records the numbers in each run's config.json and in checkpoints/README.md.
The files are made by the evaluation runner (as `examples/evaluate.py run`), so the
same pass also writes results/kodak/{mbt2018,bmshj2018,mbt2018_bb}.csv from the
runs on the curves (`checkpoints.curve_runs`: the widest run of each family and
lambda; a narrower run beside it is measured into its config.json only).

  python benchmarks/evaluate_checkpoints.py --kodak '../shared/data/kodak/*.png'

For mbt2018/bmshj2018 runs: mean bpp from real files, PSNR, MS-SSIM over all images.
For mbt2018_bb runs: the file bpp, the net bpp after bits back (amortized q, random
side information), and the decoded PSNR / MS-SSIM. With a published curve available,
the BD-rate of the mean-scale family against the paper's base hyperprior is added.

With --write (default), each evaluated run's config.json gets its `kodak` numbers,
and the block between the RESULTS markers of checkpoints/README.md is regenerated
from all runs' config.json: the table, the BD-rate against the published curve,
and the zoo checks (mean-scale beats scale-only at every lambda, bpp monotone in
lambda per family, bits-back net rate per lambda).
"""

import glob
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.evaluation import options as options_lib  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import rd_curves  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import runner  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import hyperprior  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("kodak", "../shared/data/kodak/*.png", "Glob of Kodak images.")
flags.DEFINE_string("published", "results/published/yang2020_improving_inference"
                    "/kodak/mbt2018-psnr.csv",
                    "Published base-hyperprior curve (headerless bpp, psnr; shipped "
                    "in results/published/, see its README).")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_list("runs", None, "Runs to evaluate (default: all shipped).")
flags.DEFINE_string("results_dir", "results/kodak",
                    "Per-image JSON and the per-family CSVs (mbt2018.csv, "
                    "bmshj2018.csv, mbt2018_bb.csv) of the evaluation runner.")
flags.DEFINE_bool("write", True, "Write results into config.json and README.md.")
FLAGS = flags.FLAGS


def evaluate_run(run, root, on_curves):
  """Amortized Kodak evaluation of one run with the evaluation runner.

  The run's per-image JSON (and its family's CSV) land in --results_dir as
  `examples/evaluate.py run --method FAMILY` writes them; earlier results of the
  run are removed first, since the weights may have changed since. A run not in
  `on_curves` (`checkpoints.curve_runs`) is measured outside --results_dir.
  """
  config = checkpoints.read_config(os.path.join(root, run))
  method = config["model"]  # the amortized method of each family is named after it
  shutil.rmtree(os.path.join(FLAGS.results_dir, method, run), ignore_errors=True)
  with tempfile.TemporaryDirectory() as scratch:
    # A run off the curves (a narrower one beside the curve's run of its lambda)
    # is measured, but its per-image results stay out of the family's CSV.
    results_dir = FLAGS.results_dir if run in on_curves else scratch
    runner.run_method(method, results_dir, FLAGS.kodak, run,
                      options_lib.Options(checkpoint_dir=FLAGS.checkpoint_dir))
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, method, run, "*.json"))):
      with open(path) as f:
        rows.append(json.load(f))
  means = {k: float(np.mean([r[k] for r in rows]))
           for k in ("file_bpp", "est_bpp", "psnr", "ms_ssim", "mse")}
  means["bpp"] = means.pop("file_bpp")
  if method == "mbt2018_bb":  # the runner's bpp of bits-back methods is the net rate
    means["net_bpp"] = float(np.mean([r["bpp"] for r in rows]))
  means["images"] = len(rows)
  # The training objective on Kodak: bpp (net bpp for bits-back) + lambda * MSE.
  means["loss"] = means.get("net_bpp", means["bpp"]) + config["lmbda"] * means["mse"]
  return config, means


def family_of(run, root):
  """The model family of a run, as its config.json records it ("mbt2018_bb")."""
  return checkpoints.read_config(os.path.join(root, run)).get("model")


def drop_off_curve_results(root, on_curves, results_dir):
  """Removes the per-image results of shipped runs that are off the curves (a
  wider run of their lambda replaced them): the runner builds a family's CSV from
  every run folder under `results_dir/FAMILY/`, so a replaced run's old files
  would be averaged into its lambda's row."""
  for run in checkpoints.list_runs(root):
    family = family_of(run, root)
    path = os.path.join(results_dir, family, run)
    if (family in hyperprior.MODEL_CLASSES and run not in on_curves
        and os.path.isdir(path)):
      shutil.rmtree(path)
      print(f"removed {path}: {run} is off the curve")


def readme_table(root):
  lines = ["| run | model | lambda | steps | patch x batch | Kodak bpp | net bpp "
           "| PSNR (dB) | MS-SSIM |", "| --- | --- | --- | --- | --- | --- | --- "
           "| --- | --- |"]
  on_curves = checkpoints.curve_runs(root)
  for run in checkpoints.list_runs(root):
    c = checkpoints.read_config(os.path.join(root, run))
    if c.get("model") not in hyperprior.MODEL_CLASSES:
      continue
    k = c.get("kodak", {})
    fmt = lambda key, f: (f.format(k[key]) if key in k else "-")  # noqa: E731
    note = "" if run in on_curves else " (smaller model, off the curve)"
    # Bits-back runs whose q(z | y_hat) was refitted after training.
    steps = f"{c.get('steps', '-')}" + (" + q refit" if c.get("posterior_refit") else "")
    lines.append(
        f"| `{run}`{note} | {c['model_class']} | {c['lmbda']:g} | {steps} | "
        f"{c.get('patchsize', '-')} x {c.get('batchsize', '-')} | "
        f"{fmt('bpp', '{:.4f}')} | {fmt('net_bpp', '{:.4f}')} | "
        f"{fmt('psnr', '{:.2f}')} | {fmt('ms_ssim', '{:.4f}')} |")
  return "\n".join(lines)


BEGIN, END = "<!-- RESULTS:BEGIN -->", "<!-- RESULTS:END -->"


def measured_curves(root):
  """{family: [(lmbda, kodak dict)] sorted by lambda} from the config.json of the
  runs on the curves (`checkpoints.curve_runs`)."""
  curves = {}
  for run in checkpoints.curve_runs(root):
    config = checkpoints.read_config(os.path.join(root, run))
    if "kodak" in config:
      curves.setdefault(config["model"], []).append((config["lmbda"],
                                                     config["kodak"]))
  return {family: sorted(points, key=lambda p: p[0])
          for family, points in curves.items()}


def zoo_checks(curves):
  """Lines of text: BD-rate vs the published curve and the zoo's quality checks."""
  lines = []
  mean_scale = curves.get("mbt2018", [])
  if os.path.exists(FLAGS.published) and len(mean_scale) >= 2:
    ref_bpp, ref_psnr = rd_curves.read_curve(FLAGS.published)
    bpp = [k["bpp"] for _, k in mean_scale]
    psnr = [k["psnr"] for _, k in mean_scale]
    try:
      lines.append(
          f"- BD-rate of the mbt2018 family against the published base hyperprior "
          f"(Yang et al. 2020, 192 filters, 2M steps on CLIC): "
          f"**{rd_curves.bd_rate(ref_bpp, ref_psnr, bpp, psnr):+.1f}%** "
          f"(BD-PSNR {rd_curves.bd_psnr(ref_bpp, ref_psnr, bpp, psnr):+.2f} dB; "
          f"PSNR overlap {max(min(psnr), min(ref_psnr)):.2f}-"
          f"{min(max(psnr), max(ref_psnr)):.2f} dB).")
    except ValueError as error:
      lines.append(f"- BD-rate against the published curve not computable: {error}")
  scale_only = dict(curves.get("bmshj2018", []))
  if mean_scale and scale_only:
    cells, wins = [], 0
    for lmbda, k in mean_scale:
      if lmbda in scale_only and "loss" in k and "loss" in scale_only[lmbda]:
        won = k["loss"] < scale_only[lmbda]["loss"]
        wins += won
        cells.append(f"{lmbda:g}: {k['loss']:.3f} vs {scale_only[lmbda]['loss']:.3f}"
                     f"{'' if won else ' (NOT better)'}")
    lines.append(f"- Mean-scale beats scale-only (Kodak loss bpp + lambda * MSE, "
                 f"mbt2018 vs bmshj2018) at {wins} of {len(cells)} lambdas: "
                 + "; ".join(cells) + ".")
  for family, points in sorted(curves.items()):
    rates = [k["bpp"] for _, k in points]
    monotone = all(a > b for a, b in zip(rates[1:], rates[:-1]))
    lines.append(f"- {family}: bpp {'is' if monotone else 'is NOT'} strictly "
                 f"increasing in lambda (" + ", ".join(
                     f"{l:g}: {r:.3f}" for (l, _), r in zip(points, rates)) + ").")
  if curves.get("mbt2018_bb"):
    lines.append("- mbt2018_bb net bpp after bits back (amortized q(z | y_hat), z on a "
                 "1/32 grid, random side information): " + ", ".join(
                     f"{l:g}: {k['net_bpp']:.3f} (file {k['bpp']:.3f})"
                     for l, k in curves["mbt2018_bb"]) + ".")
  return lines


def write_readme_block(root, text):
  path = os.path.join(root, "README.md")
  if not os.path.exists(path):
    return
  with open(path) as f:
    readme = f.read()
  if BEGIN not in readme or END not in readme:
    print(f"{path} has no {BEGIN} ... {END} block; not updated")
    return
  head, rest = readme.split(BEGIN, 1)
  tail = rest.split(END, 1)[1]
  with open(path, "w") as f:
    f.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")
  print(f"updated {path}")


def main(argv):
  del argv
  root = FLAGS.checkpoint_dir or checkpoints.default_checkpoint_dir()
  runs = FLAGS.runs or [r for r in checkpoints.list_runs(root)
                       if family_of(r, root) in hyperprior.MODEL_CLASSES]
  on_curves = checkpoints.curve_runs(root)
  drop_off_curve_results(root, on_curves, FLAGS.results_dir)
  for run in runs:
    start = time.time()
    config, means = evaluate_run(run, root, on_curves)
    print(f"{run}: " + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
          + f"  ({time.time() - start:.0f} s)", flush=True)
    if FLAGS.write:
      config["kodak"] = dict(means, protocol="amortized compression, real file "
                             "sizes, mean over images")
      checkpoints.write_config(os.path.join(root, run), config)
  text = readme_table(root) + "\n\n" + "\n".join(zoo_checks(measured_curves(root)))
  print(text)
  if FLAGS.write:
    write_readme_block(root, text)


if __name__ == "__main__":
  app.run(main)
