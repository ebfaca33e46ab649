"""Subcommand implementations shared by the binaries in `examples/`.

`train`, `compress` and `decompress` work the same for every method; a method only
supplies how it turns a padded image batch into quantized latents.
"""

import glob as glob_lib
import os
import time

import numpy as np
import tensorflow as tf

from absl import flags

from tfc_inference import distribution
from tfc_inference import training
from tfc_inference.cli import common
from tfc_inference.coding import codec
from tfc_inference.coding import decoding
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.models import frozen
from tfc_inference.models import hyperprior
from tfc_inference.models import widening
from tfc_inference.util import image_io
from tfc_inference.util import output_paths

FLAGS = flags.FLAGS

FILE_SUFFIX = ".tfci"


def train_run(name, make_model, fields, leg_details=None):
  """Trains (or resumes) run `name` of the model `make_model()` builds, with the
  training flags (`--strategy` decides where; the model is built in its scope).

  `fields` are the model-specific entries of config.json (model family, sizes,
  loss); `leg_details` model-specific settings of this leg for its `lr_schedule`
  entry. Returns (run directory, config, model).
  """
  checkpoints.check_run_name(name)
  frozen.warn_if_slow_bfloat16(FLAGS.train_compute_dtype, common.warn)
  # Before any TF op: the mirrored strategy may have to split the CPU first.
  strategy = distribution.make_strategy(FLAGS.strategy, FLAGS.cpu_replicas)
  distribution.check_global_batch(strategy, FLAGS.batchsize)
  path = os.path.join(common.checkpoint_dir(), name)
  os.makedirs(path, exist_ok=True)
  config = (checkpoints.read_config(path)
            if os.path.exists(os.path.join(path, checkpoints.CONFIG_FILE)) else {})
  def sizes(entries):  # (N, M): y is as wide as the hidden layers unless given
    return entries.get("num_filters"), entries.get("num_latents",
                                                   entries.get("num_filters"))
  if config and (config.get("model") != fields["model"]
                 or sizes(config) != sizes(fields)):
    raise checkpoints.CheckpointError(
        f"{path} holds a {config.get('model')} run with num_filters, num_latents "
        f"= {sizes(config)}; pick another --run_name")
  if config.get("posterior_refit"):
    common.warn(f"{name}: training replaces its refitted q(z | y_hat); run "
                "refit_posterior again when training ends")
  init_arrays, init_name, initial_step = None, None, 0
  resumable = os.path.isdir(os.path.join(path, "train"))
  if FLAGS.init_from:
    init_path = checkpoints.run_dir(FLAGS.init_from, common.checkpoint_dir())
    init_arrays, _ = checkpoints.load_arrays(init_path)
    init_name = os.path.basename(os.path.normpath(init_path))
    if os.path.realpath(init_path) == os.path.realpath(path):
      # Continuing a run from its own exported weights (e.g. a fresh clone has no
      # train/ folder): keep counting its steps.
      initial_step = int(config.get("steps", 0))
      init_name = f"its exported weights (step {initial_step})"
    elif not resumable:
      # A new lineage replaces whatever the folder held (its old schedule,
      # steps and results no longer describe the weights).
      for key in ("steps", "lr_schedule", "kodak", "init_from"):
        config.pop(key, None)
      config["init_from"] = os.path.basename(os.path.normpath(init_path))
    else:
      config.setdefault("init_from", os.path.basename(os.path.normpath(init_path)))
  # Each process of a run draws its own crops (a run trained in chunks would
  # otherwise see the same ones in every chunk); a new run draws FLAGS.seed's.
  seed = training.data_seed(FLAGS.seed, training.resume_step(path, initial_step))
  training.seed_everything(seed)
  dataset, num_files = training.make_dataset(
      FLAGS.train_glob, FLAGS.patchsize, FLAGS.batchsize, seed)
  config.update(
      fields, last_step=FLAGS.last_step, batchsize=FLAGS.batchsize,
      patchsize=FLAGS.patchsize,
      train_data=f"{FLAGS.train_glob} ({num_files} images), random "
                 f"{FLAGS.patchsize}x{FLAGS.patchsize} crops", seed=FLAGS.seed)
  with strategy.scope():
    model = make_model()
    model.build_all()
  if init_arrays is not None:
    init_arrays = widening.widen(model, init_arrays)
  replicas = strategy.num_replicas_in_sync
  print(f"training {name} in {path}"
        + (f" on {replicas} replicas ({FLAGS.strategy})" if replicas > 1 else "")
        + f" (data seed {seed})", flush=True)
  training.train(model, path, dataset, FLAGS.last_step, FLAGS.lr, config=config,
                 init_arrays=init_arrays, init_name=init_name,
                 initial_step=initial_step,
                 decay_at=FLAGS.decay_at,
                 compute_dtype=FLAGS.train_compute_dtype,
                 leg_details=dict(patchsize=FLAGS.patchsize,
                                  batchsize=FLAGS.batchsize,
                                  compute_dtype=FLAGS.train_compute_dtype,
                                  **(leg_details or {})),
                 log_every=FLAGS.log_every, save_every=FLAGS.save_every,
                 strategy=strategy)
  return path, config, model


def train(prefix):
  """`train`: trains (or resumes) the run of family `prefix` set by the flags."""
  lmbda = FLAGS["lambda"].value
  cls = hyperprior.MODEL_CLASSES[prefix]
  num_latents = FLAGS.num_latents or FLAGS.num_filters
  fields = dict(model=prefix, model_class=cls.__name__,
                num_filters=FLAGS.num_filters, lmbda=lmbda)
  if num_latents != FLAGS.num_filters:
    fields["num_latents"] = num_latents
  train_run(FLAGS.run_name or hyperprior.run_name(
                prefix, FLAGS.num_filters, lmbda, num_latents),
            lambda: cls(lmbda=lmbda, num_filters=FLAGS.num_filters,
                        num_latents=num_latents,
                        train_synthesis_input=FLAGS.train_synthesis_input),
            fields,
            leg_details=dict(synthesis_input=FLAGS.train_synthesis_input))


def refit_posterior(run):
  """`refit_posterior RUNNAME`: fits a bits-back run's amortized q(z | y_hat) to
  the rounded latents of --refit_crops training crops (`posterior_refit`) and
  writes the run's weights.npz again. Its analysis, synthesis, hyper-synthesis,
  p(z) and coding tables stay as they were; config.json records the refit (and
  drops the Kodak numbers, which no longer describe the weights)."""
  from tfc_inference import posterior_refit  # pylint: disable=import-outside-toplevel
  if not glob_lib.glob(FLAGS.train_glob):
    raise image_io.ImageError(f"--train_glob {FLAGS.train_glob!r} matches no files")
  if FLAGS.refit_crops <= FLAGS.refit_held_out:
    raise checkpoints.CheckpointError(
        f"--refit_crops ({FLAGS.refit_crops}) must exceed --refit_held_out "
        f"({FLAGS.refit_held_out})")
  model, config, run_name = load_model(run, ["mbt2018_bb"])
  path = checkpoints.run_dir(run, common.checkpoint_dir())
  training.seed_everything(FLAGS.seed)
  dataset, num_files = training.make_dataset(
      FLAGS.train_glob, FLAGS.patchsize, 8, FLAGS.seed)
  common.say(f"refitting q(z | y_hat) of {run_name} (step {config.get('steps')}) "
             f"on {FLAGS.refit_crops} crops of {FLAGS.patchsize}x"
             f"{FLAGS.patchsize} from {num_files} images")
  latents = posterior_refit.rounded_latents(model, dataset, FLAGS.refit_crops)
  record = posterior_refit.refit_posterior(
      model, latents, FLAGS.refit_steps, lr=FLAGS.refit_lr,
      batchsize=FLAGS.refit_batchsize, held_out=FLAGS.refit_held_out,
      seed=FLAGS.seed, print_fn=common.say)
  record.update(at_step=config.get("steps"), patchsize=FLAGS.patchsize,
                train_data=FLAGS.train_glob, seed=FLAGS.seed)
  checkpoints.save_weights(model, path)
  config.setdefault("posterior_refit", []).append(record)
  config.pop("kodak", None)
  checkpoints.write_config(path, config)
  common.say(f"wrote {os.path.join(path, checkpoints.WEIGHTS_FILE)}")


def load_model(run, families):
  model, config, run_name = checkpoints.load_run(run, common.checkpoint_dir())
  if config["model"] not in families:
    raise checkpoints.CheckpointError(
        f"run {run_name!r} is a {config['model']} model; this binary needs one of "
        f"{', '.join(families)}")
  return model, config, run_name


def batches_by_size(inputs, outputs, max_batch):
  """Groups (name, image), output pairs into lists of same-sized images."""
  groups = {}
  for item, path in zip(inputs, outputs):
    groups.setdefault(item[1].shape, []).append((item, path))
  for group in groups.values():
    for i in range(0, len(group), max(1, max_batch)):
      yield group[i:i + max_batch]


def compress(method, families, latents_fn, run, input_spec, output=None):
  """`compress RUNNAME INPUT [OUTPUT]` for range-coded methods.

  `latents_fn(model, x, images, names)` returns (y_hat, z_hat, extras) for a padded
  batch `x` of same-sized images; `extras` is a list of per-image result dicts.
  """
  common.tile_pixels()  # a bad --tile fails before reading any image
  inputs = image_io.expand_inputs(input_spec, warn=common.warn)
  common.check_tiles(inputs)
  outputs = common.plan_outputs(inputs, output, FILE_SUFFIX)
  common.prepare_outputs()
  model, _, run_name = load_model(run, families)
  max_batch = FLAGS["batch_images"].value if "batch_images" in FLAGS else 1
  for batch in batches_by_size(inputs, outputs, max_batch):
    with model.tiled(common.tile_for(batch[0][0][1])):  # same-sized images
      _compress_batch(model, run_name, method, latents_fn, batch)


def _compress_batch(model, run_name, method, latents_fn, batch):
  """Codes one batch of same-sized images, each to its file (`compress`)."""
  start = time.time()
  images = [image for (_, image), _ in batch]
  names = [name for (name, _), _ in batch]
  x = tf.concat([codec.to_batch(image) for image in images], 0)
  y_batch, z_batch, extras = latents_fn(model, x, images, names)
  del x  # frees the float copy of the images (288 MB per 24-megapixel image)
  seconds = (time.time() - start) / len(batch)
  for i, ((name, image), path) in enumerate(batch):
    start = time.time()
    y_hat, z_hat = codec.requantize(model, y_batch[i:i + 1], z_batch[i:i + 1])
    # The rate estimate only (a full true_rd would keep a reconstruction alive).
    est_bpp = float(model.true_bits(y_hat, z_hat)[0]) / (
        image.shape[0] * image.shape[1])
    data = codec.encode_range_coded(model, run_name, method, image, y_hat, z_hat)
    result, _ = codec.verify_and_measure(
        model, image, data, y_hat.numpy(), codec.range_coded_decode_fn,
        seconds=seconds + time.time() - start,
        extra_results=dict(est_bpp=est_bpp, method=method,
                           run=run_name, image=name, lmbda=model.lmbda,
                           **extras[i]))
    common.write_bytes(path, data)
    common.write_result_json(name, result)
    common.say(common.format_result(name, result) + f"  -> {path}")


def compress_bits_back(method, latents_fn, run, input_spec, output=None,
                       bbvi_its=0, bbvi_lr=0.003):
  """`compress RUNNAME INPUT [OUTPUT] [--side_info FILE]` for bits-back methods.

  `latents_fn(model, x, image, name)` returns (integer y_hat [1, h, w, N], extra).
  `bbvi_its` > 0 makes q(z | y_hat) the result of reproducible BBVI.
  """
  from tfc_inference.coding import bits_back  # pylint: disable=import-outside-toplevel
  side_info = None
  if FLAGS.side_info:
    try:
      with open(FLAGS.side_info, "rb") as f:
        side_info = f.read()
    except OSError as error:
      raise image_io.ImageError(
          f"--side_info {FLAGS.side_info}: cannot read ({error.strerror})") from None
  common.tile_pixels()  # a bad --tile fails before reading any image
  inputs = image_io.expand_inputs(input_spec, warn=common.warn)
  common.check_tiles(inputs)
  tiles = [common.tile_for(image) for _, image in inputs]
  outputs = common.plan_outputs(inputs, output, FILE_SUFFIX)
  common.prepare_outputs()
  model, _, run_name = load_model(run, ["mbt2018_bb"])
  for ((name, image), path), tile in zip(zip(inputs, outputs), tiles):
    start = time.time()
    x = codec.to_batch(image)
    with model.tiled(tile):
      y_hat, extra = latents_fn(model, x, image, name)
      data, info = bits_back.encode_file(
          model, run_name, method, image, y_hat, side_info=side_info,
          seed=FLAGS.seed, bbvi_its=bbvi_its, bbvi_lr=bbvi_lr, bbvi_seed=FLAGS.seed)
    seconds = time.time() - start
    if info["padding_bits"]:
      common.warn(f"{name}: side information ({info['side_info_bits']} bits) is "
                  f"shorter than the ~{info['side_info_needed_bits']} bits decoding z "
                  f"consumes; padded with {info['padding_bits']} seeded random bits")
    pixels = image.shape[0] * image.shape[1]

    def decode_fn(model, compressed):
      image_out, decoded = bits_back.decode_file(model, compressed)
      if decoded["side_info"] != info["side_info"]:
        raise codec.CodingError("side information not recovered at the encoder")
      return decoded["y_hat"], image_out

    result, _ = codec.verify_and_measure(
        model, image, data, np.asarray(y_hat), decode_fn, seconds=seconds,
        extra_results=dict(
            method=method, run=run_name, image=name, lmbda=model.lmbda,
            side_info_bits=info["side_info_bits"],
            padding_bits=info["padding_bits"],
            net_bpp=(8 * len(data) - info["side_info_bits"]) / pixels,
            est_bpp=info["est_net_bits"] / pixels,
            bbvi_seconds=info["bbvi_seconds"], bbvi_its=bbvi_its, **extra))
    common.write_bytes(path, data)
    common.write_result_json(name, result)
    common.say(common.format_result(name, result) + f"  -> {path}")


def decompress(input_path, output=None):
  """`decompress INPUT [OUTPUT]`: writes the PNG; the run comes from the header.

  Every header field and output path is checked before a model is loaded."""
  compressed = file_format.read_file(input_path)
  if compressed.method in decoding.BAYESIAN_AC_METHODS + decoding.IREC_METHODS:
    raise file_format.wrong_binary_error(input_path, compressed.method)
  with file_format.decoding_errors(input_path):
    decoding.check_header(compressed, FLAGS.max_pixels)
  output = output_paths.decoded_path(input_path, output, FILE_SUFFIX)
  common.check_writable(output)
  side_info_out = FLAGS["side_info_out"].value if "side_info_out" in FLAGS else None
  if side_info_out:
    common.check_writable(side_info_out, "--side_info_out")
  model = decoding.load_named_run(compressed.run_name, common.checkpoint_dir())
  run_name = compressed.run_name
  with file_format.decoding_errors(input_path):
    image, info = decoding.decode_parsed(compressed, model, FLAGS.max_pixels)
  image_io.write_png(output, image, FLAGS.overwrite)
  for message in info.get("messages", []):
    common.say(message)
  if side_info_out and info.get("side_info") is not None:
    common.write_bytes(side_info_out, info["side_info"])
  elif side_info_out:
    common.warn(f"side information not written to {side_info_out}: it failed its "
                "checksum")
  common.say(f"{input_path} ({compressed.method}, run {run_name}) -> {output} "
             f"[{image.shape[1]}x{image.shape[0]}]")
  return info


def decompress_vae_file(input_path, output, method):
  """`decompress INPUT [OUTPUT]` of the VAE binaries (bayesian_ac.py, irec.py),
  for files of `method`: checks the header and output before loading the run,
  decodes, writes the PNG. Returns (image, info, codec, output path)."""
  compressed = file_format.read_file(input_path)
  if compressed.method != method:
    raise file_format.wrong_binary_error(input_path, compressed.method)
  with file_format.decoding_errors(input_path):
    decoding.check_header(compressed, FLAGS.max_pixels)
  output = output_paths.decoded_path(input_path, output, FILE_SUFFIX)
  common.check_writable(output)
  codec = decoding.load_named_run(compressed.run_name, common.checkpoint_dir(),
                                  bayesian_ac=True)
  with file_format.decoding_errors(input_path):
    image, info = decoding.decode_parsed(compressed, codec, FLAGS.max_pixels)
  image_io.write_png(output, image, FLAGS.overwrite)
  return image, info, codec, output
