"""Where one iteration of iterative inference spends its time (issue: fast inference).

Times, in one process on one image, each part of an SGA iteration as its own
`tf.function` (median of --repeats calls after a traced warm-up):
  * synthesis forward + input gradient (the distortion term), through the tfc layers
    and through `models.frozen` (raw ops from the same weights) in float32 and in
    bfloat16;
  * the relaxed rate (SGA rounding, hyper-synthesis, entropy terms) and its gradient;
  * one full step of each iterative method (gradient + Adam), with the synthesis the
    method runs by default (`--synthesis_dtype`);
  * the true-loss evaluation (rounding, exact rate, float32 synthesis) that runs every
    `eval_every` iterations;
  * the loop as users run it (`IterativeInference.run`, evaluations included), so
    the difference to the parts is Python and call overhead;
  * for bits-back: the joint SGA+BBVI step and one decoder-side reproducible-BBVI
    step.

  python benchmarks/iteration_profile.py --image ../shared/data/kodak/kodim01.png

Prints a table (ms per call) and writes --output (JSON).
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import tensorflow as tf  # pylint: disable=g-import-not-at-top,unused-import
from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from tfc_inference.models import shipped_runs  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("run", shipped_runs.BASE_RUN, "Mean-scale run.")
flags.DEFINE_string("bb_run", shipped_runs.BASE_BB_RUN,
                    "Bits-back run (empty: skip the bits-back rows).")
flags.DEFINE_string("checkpoint_dir", None, "Run folder (default: shipped).")
flags.DEFINE_string("image", None, "Image; default: a synthetic 512x768 image.")
flags.DEFINE_integer("repeats", 20, "Timed calls per part (median).")
flags.DEFINE_integer("loop_iterations", 60,
                     "Iterations of the full loop per method (after a warm-up run).")
flags.DEFINE_list("methods", ["sga", "map", "ste", "unoise", "danneal"],
                  "Iterative methods whose loop is timed.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                  "Compute dtypes of the relaxed objective to time the loops in.")
flags.DEFINE_bool("floor", True,
                  "Also time each synthesis convolution alone (raw ops, forward "
                  "+ input gradient) in float32 and bfloat16, with its GFLOP/s: "
                  "the floor no implementation of the iteration can go below.")
flags.DEFINE_string("output", "results/speed/iteration_profile.json", "JSON output.")
FLAGS = flags.FLAGS


def median_ms(fn, repeats):
  """Median wall milliseconds of `fn()` (its result fetched) after one warm-up."""
  tf.nest.map_structure(lambda t: t.numpy(), fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn())
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def loop_ms(inferer_fn, x, shape, iterations):
  """Milliseconds per iteration of a full run, from its progress clock, skipping
  iteration 0 (tracing)."""
  marks = []
  inferer = inferer_fn(iterations, lambda p: marks.append(
      (p["iteration"], p["elapsed"])))
  inferer.run(x, shape)
  (first, start), (last, end) = marks[1], marks[-1]
  return 1e3 * (end - start) / (last - first)


def profile_hyperprior(x, shape, rows):
  from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import frozen  # pylint: disable=import-outside-toplevel

  model, _, _ = checkpoints.load_run(FLAGS.run, FLAGS.checkpoint_dir)
  y0, z0 = model.analyze(x)
  y = tf.Variable(y0)
  z = tf.Variable(z0)

  def synthesis_part(synthesis):
    @tf.function
    def part():
      with tf.GradientTape() as tape:
        x_hat = tf.cast(synthesis(y), tf.float32)
        mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat))
      return tape.gradient(mse, y)
    return part

  rows["synthesis fwd+grad, tfc layers f32"] = median_ms(
      synthesis_part(model.synthesis_transform), FLAGS.repeats)
  for dtype in ("float32", "bfloat16"):
    fast = frozen.FrozenTransform(model.synthesis_transform, dtype)
    rows[f"synthesis fwd+grad, frozen {dtype}"] = median_ms(
        synthesis_part(fast), FLAGS.repeats)

  inferer = iterative.IterativeInference(model, iterative.InferenceConfig())
  seed = tf.constant([[0, 1], [0, 2]], tf.int32)

  def rate_part():
    @tf.function
    def part():
      with tf.GradientTape() as tape:
        bits, _ = inferer.relaxed_rate(y, z, tf.constant(0.5), seed)
        total = tf.reduce_sum(bits)
      return tape.gradient(total, [y, z])
    return part
  rows["relaxed rate fwd+grad (sga), tfc layers"] = median_ms(
      rate_part(), FLAGS.repeats)
  inferer.freeze_transforms()
  rows["relaxed rate fwd+grad (sga), frozen"] = median_ms(
      rate_part(), FLAGS.repeats)

  exact = (frozen.FrozenTransform(model.synthesis_transform),
           frozen.FrozenTransform(model.hyper_synthesis_transform))
  for name, transforms in (("tfc layers", None), ("frozen float32", exact)):
    part = tf.function(lambda t=transforms: inferer.true_loss(x, y, z, shape, t)[0])
    rows[f"true-loss evaluation, {name}"] = median_ms(part, FLAGS.repeats)

  for method in FLAGS.methods:
    for dtype in FLAGS.dtypes:
      make = lambda its, fn, m=method, d=dtype: iterative.IterativeInference(  # noqa: E731
          model, iterative.InferenceConfig(method=m, iterations=its,
                                           compute_dtype=d), fn, 1)
      loop_ms(make, x, shape, 3)  # warm-up of the library's own tracing
      rows[f"{method} ({dtype}): loop per iteration"] = loop_ms(
          make, x, shape, FLAGS.loop_iterations)


def profile_bits_back(x, shape, rows):
  from tfc_inference.inference import bbvi  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel

  model, _, _ = checkpoints.load_run(FLAGS.bb_run, FLAGS.checkpoint_dir)
  make = lambda its, fn: bbvi.BitsBackInference(  # noqa: E731
      model, bbvi.BitsBackConfig(iterations=its), fn, 1)
  loop_ms(make, x, shape, 3)
  rows["bb_sga: loop per iteration"] = loop_ms(make, x, shape, FLAGS.loop_iterations)
  y_hat = np.round(model.analyze(x)[0].numpy())
  its = FLAGS.loop_iterations
  # Each call traces its step anew (about a second): the difference of a short
  # and a long run is the per-iteration time.
  seconds = []
  for iterations in (3, 3 + its):
    start = time.perf_counter()
    bbvi.reproducible_bbvi(model, y_hat, iterations=iterations)
    seconds.append(time.perf_counter() - start)
  rows["reproducible BBVI (decoder) per iteration"] = (
      1e3 * (seconds[1] - seconds[0]) / its)


def profile_convolution_floor(x, rows, gflops):
  """Each synthesis convolution alone, as `models.frozen` runs it (float32:
  tfc's explicit padding; bfloat16: "SAME" with grown kernels, the RGB output
  layer in float32), without bias or GDN: forward + input gradient. `gflops`
  gets each one's GFLOP/s; the sums are the convolution floor of one iteration."""
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import frozen  # pylint: disable=import-outside-toplevel
  model, _, _ = checkpoints.load_run(FLAGS.run, FLAGS.checkpoint_dir)
  for dtype in ("float32", "bfloat16"):
    height, width = int(x.shape[1]) // 16, int(x.shape[2]) // 16
    channels, total = model.num_latents, 0.
    convs = frozen.FrozenTransform(model.synthesis_transform, dtype).convolutions
    layers = [l for l in model.synthesis_transform.layers
              if hasattr(l, "kernel_support")]
    for index, (conv, layer) in enumerate(zip(convs, layers)):
      # Multiply-adds of tfc's k x k kernel (not of the grown bfloat16 one).
      k, stride = layer.kernel_support[0], conv.strides[0]
      inputs = tf.cast(tf.random.normal([1, height, width, channels]), conv.dtype)
      shape = [1, stride * height, stride * width, conv.filters]

      @tf.function
      def part(inputs=inputs, conv=conv, shape=shape):
        with tf.GradientTape() as tape:
          tape.watch(inputs)
          outputs = tf.nn.conv2d_transpose(inputs, conv.kernel, shape,
                                           conv.strides, conv.padding)
          loss = tf.reduce_sum(tf.square(tf.cast(outputs, tf.float32)))
        return tape.gradient(loss, inputs)
      ms = median_ms(part, FLAGS.repeats)
      name = (f"conv {index} {height}x{width} {channels}->{conv.filters} "
              f"{conv.dtype.name}")
      rows[f"{name}, fwd+grad ({dtype} synthesis)"] = ms
      gflops[f"{name} ({dtype} synthesis)"] = (
          2 * 2. * height * width * k * k * channels * conv.filters / ms / 1e6)
      total += ms
      height, width, channels = stride * height, stride * width, conv.filters
    rows[f"synthesis convolutions alone, {dtype} (floor)"] = total


def main(argv):
  del argv
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import image_io  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import synthetic  # pylint: disable=import-outside-toplevel
  if FLAGS.image:
    image, name = image_io.read_image(FLAGS.image), os.path.basename(FLAGS.image)
  else:
    image, name = synthetic.test_image(512, 768, seed=0), "synthetic 512x768"
  x = codec.to_batch(image)
  shape = image.shape[:2]
  rows = {}
  load_before = os.getloadavg()[0]
  profile_hyperprior(x, shape, rows)
  if FLAGS.bb_run:
    profile_bits_back(x, shape, rows)
  gflops = {}
  if FLAGS.floor:
    profile_convolution_floor(x, rows, gflops)
  for key, value in rows.items():
    print(f"{key:48s} {value:8.1f} ms")
  for key, value in gflops.items():
    print(f"{key:48s} {value:8.0f} GFLOP/s")
  summary = dict(run=FLAGS.run, bb_run=FLAGS.bb_run, image=name,
                 height=int(shape[0]), width=int(shape[1]), cpus=os.cpu_count(),
                 load_average_before=load_before,
                 load_average_after=os.getloadavg()[0], milliseconds=rows,
                 convolution_gflops=gflops)
  from tfc_inference.evaluation import runner  # pylint: disable=import-outside-toplevel
  runner.write_json(os.path.abspath(FLAGS.output), summary)
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
