"""Rate-distortion of Bayesian AC vs. its baselines on Kodak, with one bls2017 VAE.

  python benchmarks/bayesian_ac.py [--run bls2017_vae-num_filters=64-sigma2=0.001]

Sweeps, for the trained run, Bayesian arithmetic coding over lambda, uniform and
k-means quantization of the posterior means over the fitted settings, and JPEG
(4:2:0) over quality, on every Kodak image (every point is a real file that is
decoded again). Writes into --results_dir (default results/bayesian_ac/RUN):

  bayesian_ac.csv, uniform.csv, kmeans.csv, jpeg.csv   means over images per setting
  images/NAME.json                                     every point of one image
  channels.json     bits per latent of each channel (per lambda) vs its mean KL
  summary.json      the rows, BD-rates of Bayesian AC against each baseline
  rd_psnr.png, rd_ms_ssim.png                          the curves
  channels.png      bits per latent of each channel against its mean KL (paper
                    Figure 7), at a few lambdas

Units: bpp from file sizes, PSNR in dB, MS-SSIM linear (plotted in dB as
-10 log10(1 - MS-SSIM)), BD-rate in percent (negative: Bayesian AC needs fewer bits).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import bayesian_ac_image as bi  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import bayesian_ac_sweep  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import plots  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import rd_curves  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import vae  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", None,
                    "Run to evaluate; default: the only bls2017_vae run in "
                    "--checkpoint_dir.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Run folder (default: shipped, or $TFC_INFERENCE_CHECKPOINTS).")
flags.DEFINE_string("kodak", "../shared/data/kodak/*.png", "Glob of Kodak images.")
flags.DEFINE_integer("max_images", 0, "Evaluate only the first N images (0: all).")
flags.DEFINE_string("results_dir", None,
                    "Output folder; default: results/bayesian_ac/RUN.")
flags.DEFINE_list("lambdas", None, "Bayesian AC lambdas; default: the fitted grid.")
flags.DEFINE_list("uniform_steps", None, "Uniform steps; default: all fitted.")
flags.DEFINE_list("kmeans_levels", None, "k-means levels; default: all fitted.")
flags.DEFINE_list("jpeg_qualities",
                  [str(q) for q in bayesian_ac_sweep.DEFAULT_JPEG_QUALITIES],
                  "JPEG qualities.")
flags.DEFINE_list("methods", None, "Methods to sweep, of "
                  f"{','.join(bayesian_ac_sweep.ALL_METHODS)} (default: all the run "
                  "can code).")
flags.DEFINE_bool("write_config", True,
                  "After a sweep of all 24 Kodak images, record the Bayesian AC "
                  "curve in the run's config.json.")
flags.DEFINE_string("published_dir",
                    "results/published/tfc_results/kodak/PSNR_sRGB_RGB",
                    "Folder of published PSNR curves (tfc results .txt); missing "
                    "files are skipped.")
flags.DEFINE_list("published", ["balle-2017-iclr.txt", "jpeg420.txt"],
                  "Published curves drawn in the PSNR plot for reference, with the "
                  "BD-rate of Bayesian AC against each.")
FLAGS = flags.FLAGS


def _numbers(values, cast=float):
  return None if values is None else [cast(v) for v in values]


def find_run():
  if FLAGS.run:
    return FLAGS.run
  runs = [r for r in checkpoints.list_runs(FLAGS.checkpoint_dir)
          if r.startswith(vae.PREFIX + "-")]
  if len(runs) != 1:
    raise app.UsageError(f"pass --run: found {len(runs)} {vae.PREFIX} runs "
                         f"({', '.join(runs) or 'none'})")
  return runs[0]


def bd_rates(rows, references=None, method="bayesian_ac"):
  """BD-rate (%) of `method` (Bayesian AC, or its centroid decoding) against
  each other method of `rows` and each reference curve (`{name: (bpp, psnr)}`,
  e.g. the published individually trained Balle 2017 models), None where there
  is no overlap."""
  if method not in rows:
    return {}
  ours = rows[method]
  others = {name: ([r["bpp"] for r in other], [r["psnr"] for r in other])
            for name, other in rows.items() if name != method}
  others.update(references or {})
  result = {}
  for name, (rate, psnr) in others.items():
    try:
      result[name] = rd_curves.bd_rate(rate, psnr, [r["bpp"] for r in ours],
                                       [r["psnr"] for r in ours])
    except ValueError:  # too few points, or no PSNR overlap
      result[name] = None
  return result


def published_curves():
  """The `--published` curves that exist: `{"published: NAME": (bpp, psnr)}`."""
  curves = {}
  for name in FLAGS.published:
    path = os.path.join(FLAGS.published_dir, name)
    if os.path.exists(path):
      curves[f"published: {os.path.splitext(name)[0]}"] = rd_curves.read_curve(path)
  return curves


def ms_ssim_db(values):
  values = np.minimum(np.asarray(values, float), 1. - 1e-10)
  return -10. * np.log10(1. - values)


def plot_channels(report, path):
  """Bits per latent vs mean KL (bits) per channel, one series per lambda."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("matplotlib missing: no channel plot")
    return
  lambdas = report["lambdas"]
  kl = np.array([c["kl_bits_per_latent"] for c in report["channels"]])
  bits = np.array([c["bits_per_latent"] for c in report["channels"]])  # [C, L]
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for i in sorted(set(np.linspace(0, len(lambdas) - 1, 4).round().astype(int))):
    ax.scatter(kl, bits[:, i], s=12, label=f"lambda {lambdas[i]:g}")
  top = max(kl.max(), bits.max()) * 1.05
  ax.plot([0, top], [0, top], "k:", lw=0.8, label="bits = KL")
  ax.set_xlabel("mean KL(q || prior) per latent of the channel (bits)")
  ax.set_ylabel("Bayesian AC bits per latent")
  ax.set_title(f"{report['num_images']} images, "
               f"{len(report['collapsed_channels'])} collapsed channels")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  run = find_run()
  codec = bi.ImageCodec.load(run, FLAGS.checkpoint_dir)
  images = image_io.expand_inputs(FLAGS.kodak)
  if FLAGS.max_images:
    images = images[:FLAGS.max_images]
  results_dir = FLAGS.results_dir or os.path.join(ROOT, "results", "bayesian_ac",
                                                  codec.run_name)
  os.makedirs(os.path.join(results_dir, "images"), exist_ok=True)
  print(f"{codec.run_name}: {len(images)} images -> {results_dir}", flush=True)

  def image_done(name, results):
    checkpoints.write_json_atomic(
        os.path.join(results_dir, "images", f"{name}.json"),
        dict(image=name, run=codec.run_name, points=results))

  sweep = bayesian_ac_sweep.rate_distortion(
      codec, images, lambdas=_numbers(FLAGS.lambdas),
      uniform_steps=_numbers(FLAGS.uniform_steps),
      kmeans_levels=_numbers(FLAGS.kmeans_levels, int),
      jpeg_qualities=_numbers(FLAGS.jpeg_qualities, int), methods=FLAGS.methods,
      print_fn=lambda m: print(m, flush=True), image_done_fn=image_done)
  bayesian_ac_sweep.write_rate_distortion(results_dir, sweep,
                                          extra=dict(run=codec.run_name))
  rows = sweep["rows"]
  published = published_curves()
  summary = dict(run=codec.run_name, images=[name for name, _ in images],
                 rows=rows, bd_rate_of_bayesian_ac_vs=bd_rates(rows, published))
  if "bayesian_ac_centroids" in rows:
    summary["bd_rate_of_bayesian_ac_centroids_vs"] = bd_rates(
        rows, published, "bayesian_ac_centroids")
  checkpoints.write_json_atomic(os.path.join(results_dir, "summary.json"), summary)
  if FLAGS.write_config and len(images) == 24:  # the full Kodak set only
    run_path = checkpoints.run_dir(codec.run_name, FLAGS.checkpoint_dir)
    config = checkpoints.read_config(run_path)
    config["kodak"] = dict(
        images=len(images), protocol="real file sizes, mean over images; "
        "lambda is Bayesian AC's compression-time rate penalty",
        bayesian_ac=[{k: r[k] for k in ("lambda", "bpp", "psnr", "ms_ssim")}
                     for r in rows["bayesian_ac"]],
        bd_rate_of_bayesian_ac_vs=summary["bd_rate_of_bayesian_ac_vs"])
    if "bayesian_ac_centroids" in rows:
      config["kodak"]["bayesian_ac_centroids"] = [
          {k: r[k] for k in ("lambda", "bpp", "psnr", "ms_ssim")}
          for r in rows["bayesian_ac_centroids"]]
      config["kodak"]["bd_rate_of_bayesian_ac_centroids_vs"] = summary[
          "bd_rate_of_bayesian_ac_centroids_vs"]
    checkpoints.write_config(run_path, config)

  # Method names as labels: `plots.style` gives each its name and colour.
  curves = {m: ([r["bpp"] for r in rs], [r["psnr"] for r in rs])
            for m, rs in rows.items()}
  curves.update(published)
  plots.plot_rd(curves, os.path.join(results_dir, "rd_psnr.png"),
                title=f"Kodak ({len(images)} images), {codec.run_name}")
  plots.plot_rd(
      {m: ([r["bpp"] for r in rs], ms_ssim_db([r["ms_ssim"] for r in rs]))
       for m, rs in rows.items()},
      os.path.join(results_dir, "rd_ms_ssim.png"),
      ylabel="MS-SSIM (dB, -10 log10(1 - MS-SSIM))",
      title=f"Kodak ({len(images)} images), {codec.run_name}")
  channels_path = os.path.join(results_dir, "channels.json")
  if os.path.exists(channels_path):
    with open(channels_path) as f:
      plot_channels(json.load(f), os.path.join(results_dir, "channels.png"))
  for line in bayesian_ac_sweep.format_rows(rows):
    print(line)
  for key, label in (("bd_rate_of_bayesian_ac_vs", "Bayesian AC"),
                     ("bd_rate_of_bayesian_ac_centroids_vs",
                      "Bayesian AC, centroid decoding,")):
    for method, value in summary.get(key, {}).items():
      print(f"BD-rate of {label} vs {method}: "
            + ("no overlap" if value is None else f"{value:+.1f}%"))
  print(f"wrote {results_dir}")


if __name__ == "__main__":
  app.run(main)
