"""Measures every shipped run on Kodak (amortized compression, real files) and
records the numbers in each run's config.json and in checkpoints/README.md.

  python benchmarks/evaluate_checkpoints.py --kodak '../shared/data/kodak/*.png'

For mbt2018/bmshj2018 runs: mean bpp from real files, PSNR, MS-SSIM over all images.
For mbt2018_bb runs: the file bpp, the net bpp after bits back (amortized q, random
side information), and the decoded PSNR / MS-SSIM. With a published curve available,
the BD-rate of the mean-scale family against the paper's base hyperprior is added.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference import bits_back  # pylint: disable=g-import-not-at-top
from tfc_inference import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference import codec  # pylint: disable=g-import-not-at-top
from tfc_inference import evaluation  # pylint: disable=g-import-not-at-top
from tfc_inference import image_io  # pylint: disable=g-import-not-at-top
from tfc_inference import models  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("kodak", "../shared/data/kodak/*.png", "Glob of Kodak images.")
flags.DEFINE_string("published", "../shared/data/published/yang2020_improving_inference"
                    "/kodak/mbt2018-psnr.csv",
                    "Published base-hyperprior curve (headerless bpp, psnr).")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_list("runs", None, "Runs to evaluate (default: all shipped).")
flags.DEFINE_bool("write", True, "Write results into config.json and README.md.")
FLAGS = flags.FLAGS


def evaluate_run(run, images):
  model, config, run_name = checkpoints.load_run(run, FLAGS.checkpoint_dir)
  rows = []
  for name, image in images:
    x = codec.to_batch(image)
    if config["model"] == "mbt2018_bb":
      y, _ = model.analyze(x)
      y_hat = tf.round(y).numpy()
      data, info = bits_back.encode_file(model, run_name, "mbt2018_bb", image, y_hat)
      decode_fn = lambda m, c: (lambda r: (r[1]["y_hat"], r[0]))(  # noqa: E731
          bits_back.decode_file(m, c))
      pixels = image.shape[0] * image.shape[1]
      extra = dict(net_bpp=(8 * len(data) - info["side_info_bits"]) / pixels)
    else:
      y_hat, z_hat = codec.amortized_latents(model, x)
      data = codec.encode_range_coded(model, run_name, config["model"], image,
                                      y_hat, z_hat)
      y_hat, decode_fn, extra = y_hat.numpy(), codec.range_coded_decode_fn, {}
    result, _ = codec.verify_and_measure(model, image, data, y_hat, decode_fn,
                                         extra_results=extra)
    rows.append(result)
  keys = ["bpp", "psnr", "ms_ssim"] + (["net_bpp"] if config["model"] ==
                                       "mbt2018_bb" else [])
  means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
  means["images"] = len(rows)
  return config, means


def readme_table(root):
  lines = ["| run | model | lambda | steps | patch x batch | Kodak bpp | net bpp "
           "| PSNR (dB) | MS-SSIM |", "| --- | --- | --- | --- | --- | --- | --- "
           "| --- | --- |"]
  for run in checkpoints.list_runs(root):
    if run.split("-")[0] not in models.MODEL_CLASSES:
      continue
    c = checkpoints.read_config(os.path.join(root, run))
    k = c.get("kodak", {})
    fmt = lambda key, f: (f.format(k[key]) if key in k else "-")  # noqa: E731
    lines.append(
        f"| `{run}` | {c['model_class']} | {c['lmbda']:g} | {c.get('steps', '-')} | "
        f"{c.get('patchsize', '-')} x {c.get('batchsize', '-')} | "
        f"{fmt('bpp', '{:.4f}')} | {fmt('net_bpp', '{:.4f}')} | "
        f"{fmt('psnr', '{:.2f}')} | {fmt('ms_ssim', '{:.4f}')} |")
  return "\n".join(lines)


def main(argv):
  del argv
  root = FLAGS.checkpoint_dir or checkpoints.default_checkpoint_dir()
  images = image_io.load_image_set(FLAGS.kodak)
  curves = {}
  runs = FLAGS.runs or [r for r in checkpoints.list_runs(root)
                       if r.split("-")[0] in models.MODEL_CLASSES]
  for run in runs:
    start = time.time()
    config, means = evaluate_run(run, images)
    print(f"{run}: " + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
          + f"  ({time.time() - start:.0f} s)", flush=True)
    curves.setdefault(config["model"], []).append((means["bpp"], means["psnr"]))
    if FLAGS.write:
      config["kodak"] = dict(means, protocol="amortized compression, real file "
                             "sizes, mean over images")
      checkpoints.write_config(os.path.join(root, run), config)
  if os.path.exists(FLAGS.published) and len(curves.get("mbt2018", [])) >= 2:
    bpp, psnr = zip(*sorted(curves["mbt2018"]))
    ref_bpp, ref_psnr = evaluation.read_curve(FLAGS.published)
    try:
      print(f"BD-rate of mbt2018 runs vs published base hyperprior: "
            f"{evaluation.bd_rate(ref_bpp, ref_psnr, bpp, psnr):+.1f}%")
    except ValueError as error:
      print(f"BD-rate not computable: {error}")
  if FLAGS.write:
    print(readme_table(root))


if __name__ == "__main__":
  app.run(main)
