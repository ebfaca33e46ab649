"""Training of the models: data pipeline and a resumable training loop.

`train` runs on one device, or synchronously on several devices or hosts under a
`tf.distribute` strategy (`distribution.make_strategy`); the model must then be
built under the strategy's scope.
"""

import contextlib
import glob as glob_lib
import os
import shutil
import signal
import time

import tensorflow as tf
from absl import logging

from tfc_inference import distribution
from tfc_inference.models import checkpoints
from tfc_inference.models import frozen
from tfc_inference.models import rdft
from tfc_inference.util import progress


def make_dataset(train_glob, patchsize, batchsize, seed=0):
  """Infinite dataset of random `patchsize` crops, float32 [B, p, p, 3] in [0, 255].

  Decoded images are cached in memory; images smaller than the patch are skipped.
  """
  files = sorted(glob_lib.glob(train_glob))
  if not files:
    raise ValueError(f"--train_glob {train_glob!r} matches no files")

  def read(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                               expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])

  def large_enough(image):
    shape = tf.shape(image)
    return tf.logical_and(shape[0] >= patchsize, shape[1] >= patchsize)

  def crop(image):
    patch = tf.image.random_crop(image, (patchsize, patchsize, 3), seed=seed)
    return tf.cast(patch, tf.float32)

  dataset = tf.data.Dataset.from_tensor_slices(files)
  dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.filter(large_enough).cache()
  dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.repeat().map(crop, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batchsize, drop_remainder=True).prefetch(2), len(files)


def decay_step(last_step, decay_at=None, decay_fraction=0.8):
  """The step where the learning rate drops 10x: `decay_at`, else 80% of last_step."""
  return max(1, int(decay_fraction * last_step) if decay_at is None else decay_at)


def learning_rate_schedule(lr, last_step, decay_at=None):
  """`lr` until `decay_step(last_step, decay_at)`, then `lr / 10`."""
  return tf.keras.optimizers.schedules.PiecewiseConstantDecay(
      [decay_step(last_step, decay_at)], [lr, lr / 10.])


def training_leg(start_step, last_step, lr, decay_at=None, **details):
  """One entry of config.json's `lr_schedule`: a training command's steps and
  rates. `to_step` is the step reached (`train` updates it on each export; it
  starts at the command's target `last_step`)."""
  return dict(from_step=int(start_step), to_step=int(last_step),
              last_step=int(last_step), optimizer="Adam", lr=lr, lr_after=lr / 10.,
              decay_at=decay_step(last_step, decay_at), **details)


def record_leg(config, leg):
  """Appends `leg` to config["lr_schedule"] (a list; an old string becomes its
  head) and returns the entry that stands for it.

  A leg that repeats the previous one except for its steps (the same command run
  again after an interruption) is not appended: the previous entry is returned,
  and goes on from its `from_step`.
  """
  schedule = config.get("lr_schedule", [])
  if not isinstance(schedule, list):
    schedule = [schedule]
  steps = ("from_step", "to_step")

  def plan(entry):  # legs written before `last_step` was recorded: their to_step
    return {"last_step": entry.get("to_step"),
            **{k: v for k, v in entry.items() if k not in steps}}

  if schedule and isinstance(schedule[-1], dict) and plan(schedule[-1]) == plan(leg):
    schedule[-1].setdefault("last_step", leg["last_step"])
  else:
    schedule.append(leg)
  config["lr_schedule"] = schedule
  return schedule[-1]


def replica_terms_and_gradients(model, x, num_replicas, training=True):
  """One replica's loss terms on its share `x` of the global batch, and the
  gradients of its loss / `num_replicas` (the replicas' sum of them is the
  gradient of the mean loss over the global batch)."""
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    terms = model.relaxed_rd(x, training=training)
    loss = terms["loss"] / num_replicas if num_replicas > 1 else terms["loss"]
  return terms, tape.gradient(loss, variables)


def global_terms_and_gradients(strategy, model, x, training=True):
  """(terms averaged over replicas, gradients summed over replicas) of a batch
  `x` distributed by `strategy` (a plain batch for the default strategy)."""
  replicas = strategy.num_replicas_in_sync
  terms, gradients = strategy.run(replica_terms_and_gradients,
                                  args=(model, x, replicas, training))
  mean = tf.distribute.ReduceOp.MEAN
  total = tf.distribute.ReduceOp.SUM
  return ({k: strategy.reduce(mean, v, axis=None) for k, v in terms.items()},
          [strategy.reduce(total, g, axis=None) for g in gradients])


def train(model, run_path, dataset, last_step, lr, *, config, init_arrays=None,
          init_name=None, initial_step=0, decay_at=None, compute_dtype="float32",
          leg_details=None,
          log_every=100, save_every=500, export_every=5000, print_fn=print,
          strategy=None):
  """Trains `model` until `last_step`, resuming from `run_path/train` if present.

  Without a checkpoint in `run_path/train`, weights come from `init_arrays` (if
  given; `init_name` says where they came from, for the log) and the step
  counter starts at `initial_step` (the shipped run's `steps` when a run
  continues from its own exported weights). Writes resumable
  checkpoints (with optimizer state) to `run_path/train`, TensorBoard summaries to
  `run_path/logs`, and the shippable `weights.npz` + `config.json` every
  `export_every` steps and at the end. The learning rate drops to lr / 10 at
  `decay_at` (default 80% of `last_step`). `compute_dtype` "bfloat16" runs the
  model's analysis and synthesis transforms in bfloat16 inside the step
  (`frozen.computed_in`). config["lr_schedule"] gets this leg
  (`leg_details`, e.g. patch and batch size, are recorded with it). SIGTERM/SIGINT
  save a checkpoint before exiting. Returns the dict of the last logged averages.

  strategy: a `tf.distribute.Strategy` whose scope built `model` (default: one
    device). `dataset` yields global batches; they are split over the replicas.
    Only the chief writes; the other workers of a multi-worker run save their
    (required) checkpoint copies to `run_path/.worker-<i>` and follow the chief's
    checkpoint when resuming.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribution.is_chief(strategy)
  if model.trainable_variables and not strategy.extended.variable_created_in_scope(
      model.trainable_variables[0]):
    raise ValueError("build the model under strategy.scope() to train with it")
  os.makedirs(run_path, exist_ok=True)
  train_dir = os.path.join(run_path, "train")
  if not chief:
    train_dir = os.path.join(run_path, f".worker-{distribution.task(strategy)[1]}")
  with strategy.scope():
    optimizer = tf.keras.optimizers.Adam(
        learning_rate_schedule(lr, last_step, decay_at))
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
  manager = tf.train.CheckpointManager(state, train_dir, max_to_keep=2)
  latest = tf.train.latest_checkpoint(os.path.join(run_path, "train"))
  if latest:
    state.restore(latest).expect_partial()
    print_fn(f"resumed from {latest} at step {int(step.numpy())}")
  else:
    if init_arrays is not None:
      assigned = model.set_weight_arrays(init_arrays, partial=True)
      print_fn(f"initialized {len(assigned)}/{len(model.weights)} weights from "
               f"{init_name or 'the given arrays'}")
    step.assign(initial_step)
    if initial_step:
      print_fn(f"continuing at step {initial_step}")
    if initial_step >= last_step:
      raise ValueError(f"the run is at step {initial_step} already; set "
                       f"--last_step above it to train more")
  leg = None
  start = int(step.numpy())
  if start < last_step:
    leg = record_leg(config, training_leg(start, last_step, lr,
                                          decay_at, **(leg_details or {})))
    decay = leg["decay_at"]
    if decay <= start:
      # A run continued from its own weights easily gets the default decay
      # (80% of last_step) behind its start, and would silently train at lr/10.
      print_fn(f"note: the learning rate drops to {lr / 10:g} at step "
               f"{decay}, before this leg starts at "
               f"step {start}: the whole leg trains at {lr / 10:g} (set "
               "--decay_at to move the drop)")

  replicas = strategy.num_replicas_in_sync

  def replica_step(x):
    terms, gradients = replica_terms_and_gradients(model, x, replicas)
    # Under a distribution strategy, Keras' optimizer sums the gradients over
    # the replicas before applying them.
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return terms

  @tf.function
  def train_step(x):
    terms = strategy.run(replica_step, args=(x,))
    return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in terms.items()}

  if not distribution.is_default(strategy):
    dataset = strategy.experimental_distribute_dataset(dataset)
  writer = (tf.summary.create_file_writer(os.path.join(run_path, "logs")) if chief
            else tf.summary.create_noop_writer())
  stop = {"flag": False}

  def request_stop(signum, frame):  # pylint: disable=unused-argument
    stop["flag"] = True

  previous = {s: signal.signal(s, request_stop)
              for s in (signal.SIGTERM, signal.SIGINT)}

  def export():
    if not chief:
      return
    checkpoints.save_weights(model, run_path)
    config.update(steps=int(step.numpy()))
    # Trained weights replace a refitted q(z | y_hat) (`posterior_refit`).
    config.pop("posterior_refit", None)
    if leg is not None:  # interrupted runs record the step they reached
      leg["to_step"] = int(step.numpy())
    checkpoints.write_config(run_path, config)

  sums, count, averages = {}, 0, {}
  start_step, start_time = int(step.numpy()), time.time()
  # The pace (steps/s, ETA) is measured from the end of the first step, which
  # includes tracing the step function.
  paced_steps, pace_time = 0, None
  try:
    with step_computation(model, compute_dtype):
      for x in dataset:
        if int(step.numpy()) >= last_step or stop["flag"]:
          break
        terms = train_step(x)
        step.assign_add(1)
        count += 1
        if pace_time is None:
          pace_time = time.time()
        else:
          paced_steps += 1
        for key, value in terms.items():
          sums[key] = sums.get(key, 0.) + float(value)
        current = int(step.numpy())
        if current % log_every == 0 or current == last_step:
          averages = {k: v / count for k, v in sums.items()}
          now = time.time()
          rate = paced_steps / max(now - pace_time, 1e-9)
          eta = (last_step - current) / rate if paced_steps else float("nan")
          print_fn(f"step {current}/{last_step}  loss {averages['loss']:.4f}  "
                   f"bpp {averages['bpp']:.4f}  mse {averages['mse']:.2f}  "
                   f"{rate:.2f} steps/s  ETA {progress.format_clock(eta)}")
          with writer.as_default(step=current):
            for key, value in averages.items():
              tf.summary.scalar(key, value)
            tf.summary.scalar("steps_per_second", rate)
          sums, count, paced_steps, pace_time = {}, 0, 0, now
        if current % save_every == 0:
          manager.save(checkpoint_number=current)
        if current % export_every == 0 and current < last_step:
          export()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    if int(step.numpy()) > start_step:
      manager.save(checkpoint_number=int(step.numpy()))
    writer.flush()
  if not chief:  # a worker's checkpoint copies were needed only to save
    shutil.rmtree(train_dir, ignore_errors=True)
  if stop["flag"]:
    print_fn(f"stopped at step {int(step.numpy())}; run again to resume")
  if int(step.numpy()) > 0:
    export()
  print_fn(f"trained steps {start_step}..{int(step.numpy())} in "
           f"{progress.format_clock(time.time() - start_time)}")
  if averages:
    logging.info("final averages: %s", averages)
  return averages


@contextlib.contextmanager
def step_computation(model, compute_dtype="float32"):
  """The context `train` runs its steps in: `model`'s kernels as matrix products
  (`rdft.matmul_kernels`; tfc's irfft2d was half of a step) and its analysis and
  synthesis in `compute_dtype` (`frozen.computed_in`; the hyper-transforms are
  small and set the rates: they stay float32). On exit the model computes as
  tfc's layers do again."""
  frozen.check_dtype(compute_dtype)
  with contextlib.ExitStack() as stack:
    stack.enter_context(rdft.matmul_kernels(model))
    if compute_dtype != "float32":
      stack.enter_context(frozen.computed_in(
          [model.analysis_transform, model.synthesis_transform], compute_dtype))
    yield model


def resume_step(run_path, initial_step=0):
  """The step `train` will start at: that of the newest checkpoint in
  `run_path/train`, else `initial_step`."""
  latest = tf.train.latest_checkpoint(os.path.join(run_path, "train"))
  if not latest:
    return int(initial_step)
  return int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def data_seed(seed, start_step):
  """Seed of the crops and noise of a training process that starts at
  `start_step`: `seed` for a new run, so fresh runs stay reproducible, and a
  different one for each resumption. One seed for all would replay the same crop
  sequence in every process of a run that is trained in chunks."""
  return int(seed) + int(start_step)


def seed_everything(seed):
  """Seeds TF, NumPy and Python's `random`; Keras initializers draw their seeds
  from the last, so without it a fresh run's initial weights differ per process."""
  tf.keras.utils.set_random_seed(seed)
