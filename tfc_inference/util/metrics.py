"""Image quality metrics on 0-255 RGB images, and rate helpers."""

import numpy as np
import tensorflow as tf
from absl import logging

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_MS_SSIM_FILTER = 11


def mse(a, b):
  """Mean squared error between two `[H, W, 3]` images on the 0-255 scale."""
  return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


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
  value = tf.image.ssim_multiscale(
      tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32),
      max_val=255., power_factors=weights.tolist(), filter_size=filter_size)
  return float(value)


def bits_per_pixel(num_bytes, height, width):
  return 8. * num_bytes / (height * width)
