"""Image quality metrics on 0-255 RGB images, and rate helpers."""

import numpy as np
import tensorflow as tf
from absl import logging

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_MS_SSIM_FILTER = 11


# Above this many values, `mse` sums blocks of rows, so that a 24-megapixel image
# does not need three float64 copies of itself at once.
_MSE_BLOCK_VALUES = 2 ** 22


def mse(a, b):
  """Mean squared error between two `[H, W, 3]` images on the 0-255 scale."""
  a, b = np.asarray(a), np.asarray(b)
  if a.size <= _MSE_BLOCK_VALUES:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
  rows = max(1, _MSE_BLOCK_VALUES // max(1, a[0].size))
  total = 0.
  for start in range(0, a.shape[0], rows):
    difference = (a[start:start + rows].astype(np.float64)
                  - b[start:start + rows].astype(np.float64))
    total += float(np.sum(difference * difference))
  return total / a.size


def psnr_from_mse(mse_value):
  """PSNR in dB (peak 255) of an MSE on the 0-255 scale; float or array; inf at 0."""
  with np.errstate(divide="ignore"):
    return 10 * np.log10(255. ** 2 / np.asarray(mse_value, np.float64))


def psnr(a, b):
  """PSNR in dB for 8-bit images (peak 255); inf for identical images."""
  return float(psnr_from_mse(mse(a, b)))


def ms_ssim_scales(height, width, filter_size=_MS_SSIM_FILTER):
  """How many MS-SSIM scales fit an image (tf needs side >= (f-1) * 2**(k-1) + 1)."""
  side = min(height, width)
  scales = len(_MS_SSIM_WEIGHTS)
  while scales > 1 and side < (filter_size - 1) * 2 ** (scales - 1) + 1:
    scales -= 1
  return scales


def ms_ssim(a, b, warn=logging.warning):
  """MS-SSIM of two uint8 `[H, W, 3]` images (max value 255).

  Images too small for the standard 5 scales use as many scales as fit, with the
  remaining standard weights renormalized, and a warning says so; images smaller
  than the 11-pixel filter use a smaller filter.
  """
  height, width = np.asarray(a).shape[:2]
  scales = ms_ssim_scales(height, width)
  filter_size = _MS_SSIM_FILTER
  if min(height, width) < filter_size:
    filter_size = max(1, min(height, width) - (1 - min(height, width) % 2))
  weights = np.array(_MS_SSIM_WEIGHTS[:scales])
  if scales < len(_MS_SSIM_WEIGHTS) or filter_size != _MS_SSIM_FILTER:
    warn(f"MS-SSIM: {height}x{width} image is too small for 5 scales; using "
         f"{scales} scale(s) and filter size {filter_size}")
    weights = weights / weights.sum()
  if height * width > _MS_SSIM_BAND_PIXELS:
    return _banded_ms_ssim(a, b, weights.tolist(), filter_size)
  value = tf.image.ssim_multiscale(
      tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32),
      max_val=255., power_factors=weights.tolist(), filter_size=filter_size)
  return float(value)


# Above this many pixels, MS-SSIM evaluates its SSIM maps in bands of rows:
# `tf.image.ssim_multiscale` holds about a dozen float maps of the whole image
# (0.6 GB more at 6 megapixels, 2.5 GB at 24).
_MS_SSIM_BAND_PIXELS = 2 ** 21
_MS_SSIM_BAND_VALUES = 2 ** 22


def _banded_ms_ssim(a, b, power_factors, filter_size):
  """`tf.image.ssim_multiscale(a, b, 255, power_factors, filter_size)` with the
  SSIM and contrast-structure maps of each scale summed over bands of rows
  (overlapping by filter_size - 1), so memory stays a few bands. The per-scale
  means (summed in float64, where TF averages in float32), downsampling and
  weighting are TF's; results agree with TF's to about 1e-5."""
  # pylint: disable=import-outside-toplevel,protected-access
  from tensorflow.python.ops import image_ops_impl
  images = [tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32)]
  factors = []
  for scale in range(len(power_factors)):
    if scale:  # TF's 2x2 average pooling, with a symmetric pad of odd sides
      height, width = images[0].shape[:2]
      pad = [[0, height % 2], [0, width % 2], [0, 0]]
      images = [tf.nn.avg_pool(tf.pad(x, pad, mode="SYMMETRIC")[None], 2, 2,
                               "VALID")[0] for x in images]
    height, width, channels = images[0].shape
    rows = max(1, _MS_SSIM_BAND_VALUES // (width * channels))
    ssim_sum = cs_sum = tf.zeros([channels], tf.float64)
    for start in range(0, height - filter_size + 1, rows):
      stop = min(height, start + rows + filter_size - 1)
      ssim_map, cs_map = image_ops_impl._ssim_per_channel(
          images[0][start:stop], images[1][start:stop], max_val=255.,
          filter_size=filter_size, return_index_map=True)
      ssim_sum += tf.reduce_sum(tf.cast(ssim_map, tf.float64), [0, 1])
      cs_sum += tf.reduce_sum(tf.cast(cs_map, tf.float64), [0, 1])
    count = (height - filter_size + 1) * (width - filter_size + 1)
    last = scale == len(power_factors) - 1
    factors.append(tf.nn.relu((ssim_sum if last else cs_sum) / count))
  values = tf.reduce_prod(tf.stack(factors, -1) ** tf.constant(power_factors,
                                                                tf.float64), -1)
  return float(tf.reduce_mean(values))


def bits_per_pixel(num_bytes, height, width):
  return 8. * num_bytes / (height * width)
