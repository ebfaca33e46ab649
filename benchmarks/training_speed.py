"""Steps per second of one training step per model family, split into parts.

  python benchmarks/training_speed.py [--families mbt2018,bmshj2018,mbt2018_bb]
      [--shapes 128x8,256x2,256x8] [--modes irfft,matmul,matmul_bfloat16]
      [--num_latents M] [--steps 30] [--threads 0]

For each family (N filters) and patch x batch shape, on a fixed synthetic batch
(no input pipeline), after a warm-up step that traces the functions, it times:
  forward    the relaxed R-D loss (`relaxed_rd(training=True)`),
  backward   forward + gradients (the gradient part is the difference),
  optimizer  Adam's update with precomputed gradients,
  step       the whole step as `training.train` runs it.
Run it on an idle machine; `--threads 1` with `taskset -c 0` measures one core
(two such processes, one per core, is how `scripts/train_zoo_v2.sh` trains).
Prints one line per setting and a JSON summary.
"""

import contextlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.models import hyperprior  # pylint: disable=g-import-not-at-top
from tfc_inference import training  # pylint: disable=g-import-not-at-top
from tfc_inference.util import synthetic  # pylint: disable=g-import-not-at-top

flags.DEFINE_list("families", ["mbt2018", "bmshj2018", "mbt2018_bb"],
                  "Model families to time.")
flags.DEFINE_list("shapes", ["128x8", "256x2", "256x8"], "PATCHxBATCH settings.")
flags.DEFINE_integer("num_filters", 64, "Filters of every layer.")
flags.DEFINE_integer("num_latents", None, "Channels of y (default: num_filters).")
flags.DEFINE_list(
    "modes", ["irfft", "matmul", "matmul_bfloat16"],
    "How the step computes: irfft (tfc's layers as they are, each kernel an "
    "irfft2d of its RDFT: the step before 2026-12-05), matmul (kernels as one "
    "matrix product, `rdft.matmul_kernels`: what `training.train` runs in "
    "float32), matmul_bfloat16 (also analysis and synthesis in bfloat16: "
    "`--train_compute_dtype bfloat16`).")
flags.DEFINE_integer("steps", 30, "Timed repetitions of each part.")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0: TF's default).")
FLAGS = flags.FLAGS


def _seconds(fn, steps):
  fn()  # trace / warm up
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - start) / steps


def _mode_context(model, mode):
  """tfc's layers as they are ("irfft"), else `training.step_computation`."""
  if mode == "irfft":
    return contextlib.nullcontext()
  dtypes = {"matmul": "float32", "matmul_bfloat16": "bfloat16"}
  if mode not in dtypes:
    raise ValueError(f"unknown mode {mode!r}")
  return training.step_computation(model, dtypes[mode])


def time_setting(family, patch, batch, steps, mode="matmul"):
  """Seconds per call of forward, forward+backward, optimizer and full step."""
  model = hyperprior.MODEL_CLASSES[family](
      lmbda=0.01, num_filters=FLAGS.num_filters, num_latents=FLAGS.num_latents)
  model.build_all()
  with _mode_context(model, mode):
    return _time_model(model, patch, batch, steps)


def _time_model(model, patch, batch, steps):
  x = tf.constant(synthetic.image_batch(batch, patch, patch, seed=0), tf.float32)
  optimizer = tf.keras.optimizers.Adam(1e-4)
  variables = model.trainable_variables

  @tf.function
  def forward():
    return model.relaxed_rd(x, training=True)["loss"]

  @tf.function
  def backward():
    with tf.GradientTape() as tape:
      loss = model.relaxed_rd(x, training=True)["loss"]
    return tape.gradient(loss, variables)

  gradients = backward()

  @tf.function
  def update():
    optimizer.apply_gradients(zip(gradients, variables))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = model.relaxed_rd(x, training=True)["loss"]
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  times = dict(forward=_seconds(forward, steps), backward=_seconds(backward, steps),
               optimizer=_seconds(update, steps), step=_seconds(step, steps))
  times["gradient_only"] = times["backward"] - times["forward"]
  return times


def main(argv):
  del argv
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  results = []
  for family in FLAGS.families:
    for shape in FLAGS.shapes:
      for mode in FLAGS.modes:
        patch, batch = (int(v) for v in shape.split("x"))
        times = time_setting(family, patch, batch, FLAGS.steps, mode)
        results.append(dict(family=family, patch=patch, batch=batch, mode=mode,
                            steps_per_second=1. / times["step"],
                            pixels_per_second=patch * patch * batch / times["step"],
                            seconds=times))
        print(f"{family:11s} {patch}x{patch} x {batch} {mode:15s}: "
              f"{1. / times['step']:.2f} "
              f"steps/s (forward {times['forward'] * 1e3:.0f} ms, gradient "
              f"{times['gradient_only'] * 1e3:.0f} ms, Adam "
              f"{times['optimizer'] * 1e3:.0f} ms)", flush=True)
  print(json.dumps(dict(num_filters=FLAGS.num_filters,
                        num_latents=FLAGS.num_latents, threads=FLAGS.threads,
                        cpus=os.cpu_count(), results=results), indent=1))


if __name__ == "__main__":
  app.run(main)
