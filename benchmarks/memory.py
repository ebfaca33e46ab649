"""Peak memory and time of coding large photos, tiled and untiled (#20).

Each measurement is one fresh process of a binary, as a user runs it:
  compress    examples/mbt2018.py compress RUN image.png out.tfci --tile T
  decompress  examples/mbt2018.py decompress out.tfci out.png
  sga         examples/sga.py compress RUN image.png out.tfci --sga_its N --tile T
The large images are made from one photo (--image) by bicubic upscaling to 3:2
images of the requested megapixels; they stay in a temporary folder.

  python benchmarks/memory.py --image ../shared/data/kodak/kodim01.png
  python benchmarks/memory.py --megapixels 3,24 --modes compress,decompress
  python benchmarks/memory.py --megapixels 3 --modes compress,decompress --repeats 3

Prints one row per measurement (peak RSS, seconds, seconds per megapixel, bpp,
PSNR) and, where both ran, tiled against untiled; writes --output (CSV).
"""

import csv
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top

from tfc_inference.util import child_process  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", shipped_runs.BASE_RUN, "Mean-scale run.")
flags.DEFINE_string("checkpoint_dir", None,
                    "Folder of run directories (default: the shipped one).")
flags.DEFINE_string("image", None,
                    "Photo to upscale (default: the demo's photo).")
flags.DEFINE_list("megapixels", ["0.4", "3", "6", "12", "24"],
                  "Image sizes to measure (3:2 aspect).")
flags.DEFINE_list("modes", ["compress", "decompress", "sga"],
                  "What to measure: compress, decompress, sga.")
flags.DEFINE_list("tiles", ["auto", "0"],
                  "--tile settings to measure (auto, 0 or pixels).")
flags.DEFINE_float("max_untiled_megapixels", 6.,
                   "Skip --tile 0 above this size (about 1 GB per megapixel).")
flags.DEFINE_float("max_sga_megapixels", 12., "Skip sga above this size.")
flags.DEFINE_integer("sga_its", 100, "SGA iterations per sga measurement.")
flags.DEFINE_integer("repeats", 1,
                     "Runs of each measurement (tiled and untiled alternate); "
                     "rows report the median times and the largest peak.")
flags.DEFINE_string("output", os.path.join(ROOT, "results", "memory", "memory.csv"),
                    "CSV of the measurements.")
FLAGS = flags.FLAGS

# seconds: the whole process (interpreter, TF import, loading, coding); work
# seconds: compress's own encode time (from its JSON), or seconds for decompress.
FIELDS = ("mode", "megapixels", "width", "height", "tile", "peak_gib", "seconds",
          "work_seconds", "work_seconds_per_megapixel", "bpp", "psnr")


def make_image(source, megapixels, folder):
  """A 3:2 upscaled copy of `source` with about `megapixels` million pixels."""
  height = int(round((megapixels * 1e6 / 1.5) ** .5 / 16)) * 16
  width = int(round(height * 1.5 / 16)) * 16
  path = os.path.join(folder, f"photo_{width}x{height}.png")
  if not os.path.exists(path):
    source.resize((width, height), Image.BICUBIC).save(path)
  return path, width, height


def measure(mode, image_path, tile, folder):
  """Runs one binary; returns the measured row fields (without the size)."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  coded = os.path.join(folder, f"{stem}-{mode}-tile{tile}.tfci")
  results = os.path.join(folder, f"results-{mode}-{tile}")
  examples = os.path.join(ROOT, "examples")
  if mode == "decompress":
    source = os.path.join(folder, f"{stem}-compress-tile{tile}.tfci")
    args = [os.path.join(examples, "mbt2018.py"), "decompress", source,
            os.path.join(folder, f"{stem}-decoded.png"), "--overwrite"]
  else:
    binary = "mbt2018.py" if mode == "compress" else "sga.py"
    args = [os.path.join(examples, binary), "compress", FLAGS.run, image_path,
            coded, f"--tile={tile}", f"--results_dir={results}", "--overwrite"]
    if mode == "sga":
      args.append(f"--sga_its={FLAGS.sga_its}")
  if FLAGS.checkpoint_dir:
    args.append(f"--checkpoint_dir={FLAGS.checkpoint_dir}")
  seconds, peak_mib, _ = child_process.run_measured([sys.executable] + args,
                                                    cwd=ROOT)
  row = dict(tile=tile, peak_gib=peak_mib / 1024., seconds=seconds)
  if mode != "decompress":
    with open(os.path.join(results, f"{stem}.json")) as f:
      result = json.load(f)
    row.update(bpp=result["bpp"], psnr=result["psnr"], work_seconds=result["seconds"])
  else:
    row["work_seconds"] = seconds
  return row


def _print(row, prefix=""):
  print(*([prefix] if prefix else []), " ".join(f"{k}={row[k]:.4g}" if isinstance(row.get(k), float)
                         else f"{k}={row.get(k, '')}" for k in FIELDS),
        flush=True)


def _summary(measured):
  """One row for repeated runs: median times, the largest peak."""
  row = dict(measured[0])
  for key in ("seconds", "work_seconds"):
    row[key] = float(np.median([r[key] for r in measured]))
  row["peak_gib"] = max(r["peak_gib"] for r in measured)
  return row


def main(argv):
  del argv
  from tfc_inference.util import demo_image  # pylint: disable=import-outside-toplevel
  if FLAGS.image:
    source = Image.open(FLAGS.image).convert("RGB")
  else:
    source = Image.fromarray(demo_image.default_image()[1])
  if "decompress" in FLAGS.modes and "compress" not in FLAGS.modes:
    raise app.UsageError("decompress decodes what compress wrote")
  rows = []
  with tempfile.TemporaryDirectory() as folder:
    for megapixels in (float(m) for m in FLAGS.megapixels):
      image_path, width, height = make_image(source, megapixels, folder)
      runs = {}
      for _ in range(max(1, FLAGS.repeats)):
        for tile in FLAGS.tiles:
          if tile == "0" and megapixels > FLAGS.max_untiled_megapixels:
            continue
          for mode in FLAGS.modes:
            if mode == "sga" and megapixels > FLAGS.max_sga_megapixels:
              continue
            row = dict(mode=mode, megapixels=width * height / 1e6, width=width,
                       height=height, **measure(mode, image_path, tile, folder))
            runs.setdefault((tile, mode), []).append(row)
            _print(row)
      for measured in runs.values():
        row = _summary(measured)
        row["work_seconds_per_megapixel"] = row["work_seconds"] / row["megapixels"]
        rows.append(row)
        if len(measured) > 1:
          _print(row, "median:")
  os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
  with open(FLAGS.output, "w", newline="") as f:
    writer = csv.DictWriter(f, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  print(f"wrote {FLAGS.output}")
  untiled = {(r["mode"], r["width"]): r for r in rows if r["tile"] == "0"}
  for row in rows:
    base = untiled.get((row["mode"], row["width"]))
    if row["tile"] != "0" and base and "psnr" in row:
      print(f"{row['mode']} {row['megapixels']:.1f} MP tile {row['tile']} vs 0: "
            f"PSNR {row['psnr'] - base['psnr']:+.4f} dB, bpp "
            f"{100 * (row['bpp'] / base['bpp'] - 1):+.3f}%, encode time "
            f"{row['work_seconds'] / base['work_seconds']:.3f}x, memory "
            f"{row['peak_gib'] / base['peak_gib']:.2f}x")


if __name__ == "__main__":
  app.run(main)
