"""Encoders of the hyperprior methods: amortized, iterative inference, bits-back.

Each encoder has the signature `encode(run, batch, options)` of
`registry.Method`: it turns a batch of (name, uint8 image) pairs into real files,
decodes them again and returns one result dict per image (see
`_range_coded_results` and `_bits_back_result` for the fields). TensorFlow is
imported inside the encoders only.
"""

import time

import numpy as np

from tfc_inference.util import progress


def _tiled(run, batch, options):
  """Context in which the run's model codes `batch` (same-sized images) with the
  tiles `options.tile_pixels` asks for."""
  from tfc_inference.models import tiling  # pylint: disable=import-outside-toplevel
  return run.model.tiled(tiling.choose_tile(batch[0][1].shape, options.tile_pixels))


def _to_batch(batch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  return tf.concat([codec.to_batch(image) for _, image in batch], 0)


def _range_coded_results(method_name, run, batch, y_batch, z_batch,
                         shared_seconds, extras):
  """Range-codes each image's latents, decodes the file and measures it.

  `shared_seconds`: per-image share of the time spent finding the latents; the
  reported encode time adds the image's own entropy coding.
  """
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  model = run.model
  results = []
  for i, (_, image) in enumerate(batch):
    start = time.time()
    y_hat, z_hat = codec.requantize(model, y_batch[i:i + 1], z_batch[i:i + 1])
    data = codec.encode_range_coded(model, run.name, method_name, image, y_hat,
                                    z_hat)
    seconds = shared_seconds + time.time() - start
    est_bits = float(model.true_bits(y_hat, z_hat)[0])
    result, _ = codec.verify_and_measure(  # raises if the file decodes wrongly
        model, image, data, y_hat.numpy(), codec.range_coded_decode_fn,
        seconds=seconds, extra_results=extras[i])
    result.update(est_bpp=est_bits / (image.shape[0] * image.shape[1]),
                  file_bpp=result["bpp"])
    results.append(result)
  return results


def amortized_encoder(method_name):
  """mbt2018 / bmshj2018: the amortized encoder's latents, range coded."""

  def encode(run, batch, options):
    from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
    results = []
    for item in batch:
      with _tiled(run, [item], options):
        start = time.time()
        x = _to_batch([item])
        y_hat, z_hat = codec.amortized_latents(run.model, x)
        results += _range_coded_results(method_name, run, [item], y_hat, z_hat,
                                        time.time() - start, [{}])
    return results

  return encode


def iterative_encoder(method_name):
  """sga, map, ste, unoise, danneal: `IterativeInference` over a batch."""

  def encode(run, batch, options):
    with _tiled(run, batch, options):
      return _iterative(method_name, run, batch, options)

  return encode


def _iterative(method_name, run, batch, options):
  """The iterative encoder's work for one batch (see `iterative_encoder`)."""
  from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
  start = time.time()
  x = _to_batch(batch)
  config = iterative.InferenceConfig(
      method=method_name, iterations=options.sga_its,
      eval_every=options.eval_every, seed=options.seed,
      schedule_scale=options.schedule_scale,
      compute_dtype=options.compute_dtype)
  names = ",".join(name for name, _ in batch)
  progress_fn = None
  if options.progress_every:
    progress_fn = lambda p: print(  # noqa: E731
        f"  [{method_name} {run.name} {names}] it {p['iteration']} "
        f"tau {p['tau']:.3f} relaxed {p['relaxed_loss']:.4f} "
        f"true {p['true_loss']:.4f} "
        f"ETA {progress.format_seconds(p['eta'])}", flush=True)
  result = iterative.IterativeInference(
      run.model, config, progress_fn=progress_fn,
      progress_every=options.progress_every or 100).run(
          x, batch[0][1].shape[:2])
  shared = (time.time() - start) / len(batch)
  extras = [dict(
      iterations=config.iterations, lr=config.learning_rate,
      init_bpp=float(result.init_bpp[i]),
      init_psnr=float(metrics.psnr_from_mse(result.init_mse[i])),
      init_loss=float(result.init_loss[i]), loss=float(result.loss[i]),
      best_iteration=int(result.best_iteration[i]), inference_seconds=shared,
      batch_size=len(batch),
      trajectory=[[t, true[i]] for t, true, _ in result.trajectory])
            for i in range(len(batch))]
  return _range_coded_results(method_name, run, batch, result.y_hat,
                              result.z_hat, shared, extras)


def bits_back_encoder(method_name, joint_sga, reproducible_bbvi):
  """Lossy bits-back coding of a `BitsBackHyperprior` run.

  joint_sga: y_hat from the joint SGA + BBVI optimization [M2] (else the
    rounded amortized y). reproducible_bbvi: q(z | y_hat) from --bbvi_its
    iterations of reproducible BBVI (else the amortized hyper-encoder's).
  """

  def encode(run, batch, options):
    with _tiled(run, batch, options):
      return _bits_back(method_name, joint_sga, reproducible_bbvi, run, batch,
                        options)

  return encode


def _bits_back(method_name, joint_sga, reproducible_bbvi, run, batch, options):
  """The bits-back encoder's work for one batch (see `bits_back_encoder`)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference.inference import bbvi  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
  model = run.model
  start = time.time()
  x = _to_batch(batch)
  extras = [{} for _ in batch]
  if joint_sga:
    config = bbvi.BitsBackConfig(iterations=options.sga_its,
                                 eval_every=options.eval_every,
                                 seed=options.seed,
                                 schedule_scale=options.schedule_scale,
                                 compute_dtype=options.compute_dtype)
    y_batch, info = bbvi.BitsBackInference(model, config).run(
        x, batch[0][1].shape[:2])
    for i, extra in enumerate(extras):
      extra.update(
          iterations=config.iterations, init_loss=float(info["init_loss"][i]),
          init_bpp=float(info["init_bpp"][i]),
          init_psnr=float(metrics.psnr_from_mse(info["init_mse"][i])),
          batch_size=len(batch),
          nelbo_trajectory=[[t, v[i]] for t, v in info["nelbo_trajectory"]])
  else:
    y_batch = tf.round(model.analyze(x)[0]).numpy()
  shared = (time.time() - start) / len(batch)
  bbvi_its = options.bbvi_its if reproducible_bbvi else 0
  return [_bits_back_result(method_name, run, image, y_batch[i:i + 1], shared,
                            bbvi_its, options.seed, extras[i])
          for i, (_, image) in enumerate(batch)]


def _bits_back_result(method_name, run, image, y_hat, shared_seconds, bbvi_its,
                      seed, extra):
  from tfc_inference.coding import bits_back  # pylint: disable=import-outside-toplevel
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  model = run.model
  start = time.time()
  data, info = bits_back.encode_file(model, run.name, method_name, image, y_hat,
                                     seed=seed, bbvi_its=bbvi_its,
                                     bbvi_seed=seed)
  seconds = shared_seconds + time.time() - start

  def decode_fn(model, compressed):
    decoded_image, decoded = bits_back.decode_file(model, compressed)
    if decoded["side_info"] != info["side_info"]:
      raise codec.CodingError("the decoder did not recover the side information")
    return decoded["y_hat"], decoded_image

  result, _ = codec.verify_and_measure(model, image, data, np.asarray(y_hat),
                                       decode_fn, seconds=seconds,
                                       extra_results=extra)
  pixels = image.shape[0] * image.shape[1]
  result.update(
      file_bpp=result["bpp"],
      bpp=(8 * len(data) - info["side_info_bits"]) / pixels,
      est_bpp=info["est_net_bits"] / pixels,
      side_info_bits=info["side_info_bits"], padding_bits=info["padding_bits"],
      bbvi_its=bbvi_its, bbvi_seconds=info["bbvi_seconds"])
  return result
