"""Benchmark for lossy bits-back coding (paper Figure 5: M2, A5, A6 vs the base).

For each image: the amortized base model [M3] (range coded), and with the bits-back
run: bits-back without iterative inference [A6], without SGA [A5] and SGA+BB [M2].
Every bits-back file is then decoded in a *separate process*, which must recover the
random side information bit for bit. Reports net bpp (file bits minus side
information), PSNR and the R-D loss net_bpp + lambda * MSE per method.

  python benchmarks/bits_back.py --images '../shared/data/kodak/*.png'
"""

import glob
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.coding import bits_back  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import codec  # pylint: disable=g-import-not-at-top
from tfc_inference.inference import bbvi  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top
from tfc_inference.util import metrics  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("bb_run", shipped_runs.BASE_BB_RUN, "Bits-back run.")
flags.DEFINE_string("base_run", shipped_runs.BASE_RUN,
                    "Base mean-scale run for comparison.")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Glob of test images.")
flags.DEFINE_integer("num_images", 24, "First N images of the glob.")
flags.DEFINE_string("crop", None, "Optional HxW center crop, e.g. 256x256.")
flags.DEFINE_integer("sga_its", 2000, "Joint SGA + BBVI iterations (M2).")
flags.DEFINE_integer("bbvi_its", 2000, "Reproducible BBVI iterations (M2, A5).")
flags.DEFINE_string("results_dir", "results/bits_back", "JSON, files, summary.")
flags.DEFINE_integer("seed", 0, "Seed (side information, SGA, BBVI).")
FLAGS = flags.FLAGS

METHODS = ("mbt2018", "bb_plain", "bb_no_sga", "bb_sga")


def load_images():
  return image_io.load_image_set(FLAGS.images, FLAGS.num_images, FLAGS.crop)


def encode(method, base, bb, name, image):
  x = codec.to_batch(image)
  pixels = image.shape[0] * image.shape[1]
  start = time.time()
  if method == "mbt2018":
    model, run_name = base
    y_hat, z_hat = codec.amortized_latents(model, x)
    data = codec.encode_range_coded(model, run_name, method, image, y_hat, z_hat)
    result, _ = codec.verify_and_measure(model, image, data, y_hat.numpy(),
                                         codec.range_coded_decode_fn)
    result.update(net_bpp=result["bpp"], side_info_bits=0)
    return result, data, time.time() - start
  model, run_name = bb
  if method == "bb_sga":
    y_hat, _ = bbvi.BitsBackInference(model, bbvi.BitsBackConfig(
        iterations=FLAGS.sga_its, seed=FLAGS.seed)).run(x, image.shape[:2])
  else:
    y_hat = tf.round(model.analyze(x)[0]).numpy()
  bbvi_its = 0 if method == "bb_plain" else FLAGS.bbvi_its
  data, info = bits_back.encode_file(model, run_name, method, image, y_hat,
                                     seed=FLAGS.seed, bbvi_its=bbvi_its,
                                     bbvi_seed=FLAGS.seed)
  decoded, _ = bits_back.decode_file(
      model, bits_back.file_format.CompressedFile.from_bytes(data))
  result = dict(bpp=metrics.bits_per_pixel(len(data), *image.shape[:2]),
                psnr=metrics.psnr(image, decoded), mse=metrics.mse(image, decoded),
                ms_ssim=metrics.ms_ssim(image, decoded),
                side_info_bits=info["side_info_bits"],
                net_bpp=(8 * len(data) - info["side_info_bits"]) / pixels,
                est_net_bpp=info["est_net_bits"] / pixels,
                bbvi_seconds=info["bbvi_seconds"])
  return result, data, time.time() - start


DECODE_SCRIPT = """
import json, sys

from tfc_inference.coding import bits_back, file_format
from tfc_inference.models import checkpoints
model, _, _ = checkpoints.load_run(sys.argv[1], sys.argv[2] or None)
out = {}
for path in sys.argv[3:]:
  _, info = bits_back.decode_file(model, file_format.read_file(path))
  out[path] = None if info["side_info"] is None else info["side_info"].hex()
print(json.dumps(out))
"""


def main(argv):
  del argv
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  base_model, _, base_name = checkpoints.load_run(FLAGS.base_run, FLAGS.checkpoint_dir)
  bb_model, _, bb_name = checkpoints.load_run(FLAGS.bb_run, FLAGS.checkpoint_dir)
  lmbda = {"mbt2018": base_model.lmbda}
  images = load_images()
  for name, image in images:
    for method in METHODS:
      json_path = os.path.join(FLAGS.results_dir, f"{method}-{name}.json")
      if os.path.exists(json_path):
        continue
      result, data, seconds = encode(method, (base_model, base_name),
                                     (bb_model, bb_name), name, image)
      with open(os.path.join(FLAGS.results_dir, f"{method}-{name}.tfci"), "wb") as f:
        f.write(data)
      if method != "mbt2018":
        side_info = bits_back.random_side_info(result["side_info_bits"], FLAGS.seed)
        result["side_info_hex"] = side_info.hex()
      result.update(method=method, image=name, seconds=seconds,
                    loss=result["net_bpp"] + lmbda.get(method, bb_model.lmbda)
                    * result["mse"])
      with open(json_path, "w") as f:
        json.dump(result, f)
      print(f"{method:9s} {name}: net bpp {result['net_bpp']:.4f}  bpp "
            f"{result['bpp']:.4f}  psnr {result['psnr']:.2f}  loss "
            f"{result['loss']:.4f}  {seconds:.0f}s", flush=True)
  # Decode every bits-back file in a fresh process and compare side information.
  records = {}
  for path in glob.glob(os.path.join(FLAGS.results_dir, "*.json")):
    with open(path) as f:
      record = json.load(f)
    if isinstance(record, dict) and "method" in record:
      records[(record["method"], record["image"])] = record
  files = [os.path.join(FLAGS.results_dir, f"{m}-{n}.tfci") for m, n in records
           if m != "mbt2018"]
  done = subprocess.run(
      [sys.executable, "-c", DECODE_SCRIPT, FLAGS.bb_run, FLAGS.checkpoint_dir or "",
       *files], capture_output=True, text=True, cwd=ROOT, check=True)
  recovered = json.loads(done.stdout.strip().splitlines()[-1])
  ok = {path: recovered[path] == records[tuple(os.path.basename(path)[:-5].split(
      "-", 1))]["side_info_hex"] for path in files}
  print(f"\nside information recovered bit-exactly in a separate process: "
        f"{sum(ok.values())}/{len(ok)} files")
  print(f"\n{'method':9s} {'n':>3s} {'net bpp':>8s} {'file bpp':>8s} {'PSNR':>6s} "
        f"{'loss':>7s}")
  summary = {}
  for method in METHODS:
    rs = [r for (m, _), r in records.items() if m == method]
    if not rs:
      continue
    summary[method] = {k: float(np.mean([r[k] for r in rs]))
                       for k in ("net_bpp", "bpp", "psnr", "loss")}
    summary[method]["n"] = len(rs)
    s = summary[method]
    print(f"{method:9s} {len(rs):3d} {s['net_bpp']:8.4f} {s['bpp']:8.4f} "
          f"{s['psnr']:6.2f} {s['loss']:7.4f}")
  with open(os.path.join(FLAGS.results_dir, "summary.json"), "w") as f:
    json.dump(dict(bb_run=bb_name, base_run=base_name, crop=FLAGS.crop,
                   sga_its=FLAGS.sga_its, bbvi_its=FLAGS.bbvi_its,
                   side_info_recovered=f"{sum(ok.values())}/{len(ok)}",
                   methods=summary), f, indent=2)


if __name__ == "__main__":
  app.run(main)
