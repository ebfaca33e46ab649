"""Turning quantized latents into files and files back into images.

Every method ends in `encode_range_coded` (or the bits-back equivalent): it takes
latents already on the entropy model's grid, writes the file, and then decodes that
very file to obtain the reconstruction whose quality is reported. So the numbers an
encoder prints are, by construction, those of what the decoder produces.
"""

import time

import numpy as np
import tensorflow as tf

from tfc_inference.coding import file_format
from tfc_inference.models import tiling
from tfc_inference.util import image_io
from tfc_inference.util import metrics


class CodingError(RuntimeError):
  """Raised when a file does not decode to the latents that were encoded."""


def to_batch(image):
  """uint8 [H, W, 3] -> padded float32 [1, H', W', 3] in [0, 255]."""
  return tf.constant(image_io.pad_to_multiple(image)[None], tf.float32)


def latent_shapes(image_shape):
  height, width = image_shape[:2]
  pad = image_io.SIZE_MULTIPLE
  y_shape = (-(-height // pad) * 4, -(-width // pad) * 4)
  return y_shape, (y_shape[0] // 4, y_shape[1] // 4)


def amortized_latents(model, x):
  """Amortized inference rounded to the coding grid: (y_hat, z_hat)."""
  y, z = model.analyze(x)
  z_hat = model.quantize_z(z)
  loc, _ = model.coding_conditional(z_hat, tf.shape(y)[1:3])
  return model.quantize_y(y, loc), z_hat


def encode_range_coded(model, run_name, method, image, y_hat, z_hat, extra=b""):
  """Writes one image's quantized latents ([1, ...] tensors) into file bytes.

  The file records `model.tile`, the tiling the decoder's synthesis repeats."""
  y_shape, z_shape = latent_shapes(image.shape)
  z_strings, y_strings = model.compress_latents(y_hat, z_hat)
  compressed = file_format.CompressedFile(
      method=method, fingerprint=model.fingerprint(), run_name=run_name,
      image_shape=image.shape[:2], y_shape=y_shape, z_shape=z_shape,
      strings=[z_strings.numpy()[0], y_strings.numpy()[0]], extra=extra,
      digest=file_format.latents_digest(*model.coded_symbols(y_hat, z_hat)),
      tile=model.tile)
  return compressed.to_bytes()


def check_range_coded_header(compressed, max_pixels=None):
  """Validates a range-coded file's header before any decoding (FormatError)."""
  file_format.check_geometry(compressed, latent_shapes, max_pixels, strings=2)


def decode_range_coded_latents(model, compressed, max_pixels=None):
  """(y_hat, z_hat) of a parsed file, checked against the header's digest."""
  check_range_coded_header(compressed, max_pixels)
  y_hat, z_hat = _decode_strings(model, compressed)
  compressed.check_digest(*model.coded_symbols(y_hat, z_hat))
  return y_hat, z_hat


def _decode_strings(model, compressed):
  z_string, y_string = compressed.strings
  return model.decompress_latents(
      tf.constant([z_string]), tf.constant([y_string]), compressed.y_shape,
      compressed.z_shape)


def verify_and_measure(model, image, data, y_hat, decode_fn, extra_results=None,
                       seconds=None):
  """Decodes `data` as the receiver would and reports metrics of that result.

  Raises CodingError if the decoded latents differ from the encoded ones (which
  would make any reported quality meaningless).
  """
  compressed = file_format.CompressedFile.from_bytes(data)
  start = time.time()
  decoded_y, reconstruction = decode_fn(model, compressed)
  decode_seconds = time.time() - start
  if decoded_y is not None and not np.array_equal(
      np.asarray(decoded_y), np.asarray(y_hat)):
    mismatch = np.mean(np.asarray(decoded_y) != np.asarray(y_hat))
    raise CodingError(f"decoded latents differ from encoded ones "
                      f"({100 * mismatch:.3f}% of entries)")
  height, width = image.shape[:2]
  result = dict(
      bpp=metrics.bits_per_pixel(len(data), height, width),
      num_bytes=len(data),
      psnr=metrics.psnr(image, reconstruction),
      ms_ssim=metrics.ms_ssim(image, reconstruction),
      mse=metrics.mse(image, reconstruction),
      decode_seconds=decode_seconds,
      height=height, width=width, tile_pixels=compressed.tile * tiling.STRIDE)
  if seconds is not None:
    result["seconds"] = seconds
  result.update(extra_results or {})
  return result, reconstruction


def range_coded_decode_fn(model, compressed, max_pixels=None):
  """decode_fn for `verify_and_measure`: returns (y_hat, uint8 image)."""
  y_hat, _ = decode_range_coded_latents(model, compressed, max_pixels)
  with model.tiled(compressed.tile):
    x_hat = model.synthesize(y_hat)[0]
  height, width = compressed.image_shape
  return y_hat.numpy(), image_io.to_uint8(x_hat[:height, :width].numpy())


def requantize(model, y_hat, z_hat):
  """Re-expresses y_hat on the grid the decoder will compute (batch-1 `loc`).

  Iterative methods optimize batches; conv results can differ in the last bit
  between batch sizes, so the integer offsets `round(y_hat - loc)` are kept and
  `loc` is recomputed exactly as the decoder will.
  """
  if not model.y_grid_uses_loc:
    return y_hat, z_hat
  loc_batch, _ = model.coding_conditional(z_hat, tf.shape(y_hat)[1:3])
  offsets = tf.round(y_hat - loc_batch)
  y_list = []
  for i in range(int(y_hat.shape[0])):
    loc_single, _ = model.coding_conditional(z_hat[i:i + 1], tf.shape(y_hat)[1:3])
    y_list.append(offsets[i:i + 1] + loc_single)
  return tf.concat(y_list, 0), z_hat
