"""Does SGA in bfloat16 reach the float32 result? (issue: fast iterative inference)

For each mean-scale lambda, runs SGA (paper settings, --iterations) on the same
batch of Kodak crops once per compute dtype of the relaxed objective
(`InferenceConfig.compute_dtype`) and compares the final true R-D loss of the
rounded latents (always evaluated in float32, as the decoder computes it).
Finished (lambda, dtype) cells are kept in --output, so an interrupted run resumes.

  python benchmarks/compute_dtype_quality.py --images '../shared/data/kodak/*.png'
"""

import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tensorflow as tf  # pylint: disable=g-import-not-at-top,unused-import
from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Glob of test images.")
flags.DEFINE_integer("num_crops", 8, "Center crops of the first N images.")
flags.DEFINE_integer("crop", 256, "Crop side in pixels.")
flags.DEFINE_list("lambdas", ["0.005", "0.01", "0.02", "0.04"],
                  "Lambdas of the shipped mbt2018 runs to compare on.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to compare.")
flags.DEFINE_integer("iterations", 2000, "SGA iterations.")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_string("output", "results/speed/compute_dtype_quality.json",
                    "JSON output (also the resume state).")
FLAGS = flags.FLAGS


def center_crops(paths, size):
  from tfc_inference.util import image_io  # pylint: disable=import-outside-toplevel
  crops = []
  for path in paths:
    image = image_io.read_image(path)
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    crops.append(image[top:top + size, left:left + size])
  return np.stack(crops).astype(np.float32)


def main(argv):
  del argv
  from tfc_inference.evaluation import runner  # pylint: disable=import-outside-toplevel
  from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel

  paths = sorted(glob.glob(FLAGS.images))[:FLAGS.num_crops]
  if len(paths) < FLAGS.num_crops:
    raise SystemExit(f"Error: --images matches {len(paths)} files, "
                     f"--num_crops needs {FLAGS.num_crops}")
  x = tf.constant(center_crops(paths, FLAGS.crop))
  state = {}
  if os.path.exists(FLAGS.output):
    with open(FLAGS.output) as f:
      state = json.load(f)
  cells = state.setdefault("cells", {})
  state.update(images=[os.path.basename(p) for p in paths], crop=FLAGS.crop,
               iterations=FLAGS.iterations)
  for lmbda in FLAGS.lambdas:
    run = checkpoints.run_at("mbt2018", lmbda, FLAGS.checkpoint_dir)
    model, config, _ = checkpoints.load_run(run, FLAGS.checkpoint_dir)
    for dtype in FLAGS.dtypes:
      key = f"{run}/{dtype}"
      if key in cells:
        continue
      start = time.time()
      result = iterative.IterativeInference(model, iterative.InferenceConfig(
          iterations=FLAGS.iterations, compute_dtype=dtype)).run(x)
      cells[key] = dict(run=run, steps=config.get("steps"), dtype=dtype,
                        loss=result.loss.tolist(), bpp=result.bpp.tolist(),
                        mse=result.mse.tolist(), init_loss=result.init_loss.tolist(),
                        mean_loss=float(result.loss.mean()),
                        seconds=time.time() - start)
      print(f"{key}: loss {result.loss.mean():.5f} (init "
            f"{result.init_loss.mean():.5f}) in {cells[key]['seconds']:.0f} s",
            flush=True)
      runner.write_json(os.path.abspath(FLAGS.output), state)
  reference = FLAGS.dtypes[0]
  summary = {}
  for lmbda in FLAGS.lambdas:
    run = checkpoints.run_at("mbt2018", lmbda, FLAGS.checkpoint_dir)
    base = cells[f"{run}/{reference}"]["mean_loss"]
    for dtype in FLAGS.dtypes[1:]:
      loss = cells[f"{run}/{dtype}"]["mean_loss"]
      summary[f"{run}/{dtype}"] = 100. * (loss / base - 1.)
      print(f"{run}: {dtype} {loss:.5f} vs {reference} {base:.5f}: "
            f"{summary[f'{run}/{dtype}']:+.3f}%")
  state["percent_above_reference"] = summary
  runner.write_json(os.path.abspath(FLAGS.output), state)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
