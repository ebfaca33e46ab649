"""Image quality metrics on 0-255 RGB images, and rate helpers."""

import numpy as np
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
  return _ms_ssim(a, b, weights, filter_size)


# MS-SSIM sums its SSIM maps over bands of this many values, so that
# memory stays a few bands even for a 24-megapixel photo.
_MS_SSIM_BAND_VALUES = 2 ** 20
_SSIM_C1 = (0.01 * 255.) ** 2
_SSIM_C2 = (0.03 * 255.) ** 2


def _ms_ssim(a, b, power_factors, filter_size):
  """`tf.image.ssim_multiscale(a, b, 255, power_factors, filter_size)` in NumPy.

  Same definition as TF's (Gaussian window with sigma 1.5, VALID positions, 2x2
  average pooling with odd sides padded symmetrically, per-channel products,
  mean over channels), with the 2-D window applied as two 1-D passes and the
  maps computed in float32 and summed in float64 over bands of rows. TF's
  depthwise 11x11 convolutions took most of a cold `compress` call; this is
  about 40x faster and agrees with TF to about 1e-6.
  """
  taps = _gaussian_taps(filter_size)
  images = [np.asarray(a), np.asarray(b)]  # uint8 until the first pooling
  factors = []
  for scale in range(len(power_factors)):
    if scale:
      images = [_average_pool_2x2(x) for x in images]
    height, width, channels = images[0].shape
    rows = max(1, _MS_SSIM_BAND_VALUES // (width * channels))
    ssim_sum = np.zeros(channels)
    cs_sum = np.zeros(channels)
    for start in range(0, height - filter_size + 1, rows):
      stop = min(height, start + rows + filter_size - 1)
      band_ssim, band_cs = _ssim_sums(images[0][start:stop], images[1][start:stop],
                                      taps)
      ssim_sum += band_ssim
      cs_sum += band_cs
    count = (height - filter_size + 1) * (width - filter_size + 1)
    last = scale == len(power_factors) - 1
    factors.append(np.maximum(0., (ssim_sum if last else cs_sum) / count))
  values = np.prod(np.stack(factors, -1) ** np.asarray(power_factors), -1)
  return float(np.mean(values))


def _gaussian_taps(size, sigma=1.5):
  """The 1-D factor of TF's normalized `size`x`size` Gaussian SSIM window."""
  offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.
  taps = np.exp(-offsets * offsets / (2. * sigma * sigma))
  return taps / taps.sum()


def _blur(x, taps):
  """VALID correlation of `[H, W, C]` with the window outer(taps, taps)."""
  height = x.shape[0] - len(taps) + 1
  rows = taps[0] * x[:height]
  for k in range(1, len(taps)):
    rows += taps[k] * x[k:k + height]
  width = x.shape[1] - len(taps) + 1
  out = taps[0] * rows[:, :width]
  for k in range(1, len(taps)):
    out += taps[k] * rows[:, k:k + width]
  return out


def _ssim_sums(a, b, taps):
  """Per-channel sums of the SSIM and contrast-structure maps of a band.

  The maps are computed in float32, as TF computes them (half the memory
  traffic of float64, which made MS-SSIM a tenth of a cold `compress` call);
  the (co)variances are taken of values centred on 128, which keeps the
  cancellation in E[ab] - E[a] E[b] small, and the sums are float64."""
  center, dtype = np.float32(128.), np.float32
  a, b = a.astype(dtype) - center, b.astype(dtype) - center
  taps = taps.astype(dtype)
  mean_a, mean_b = _blur(a, taps), _blur(b, taps)
  covariance = _blur(a * b, taps) - mean_a * mean_b
  variances = _blur(a * a + b * b, taps) - (mean_a * mean_a + mean_b * mean_b)
  mean_a += center
  mean_b += center
  mean_ab = mean_a * mean_b
  luminance = ((dtype(2.) * mean_ab + dtype(_SSIM_C1))
               / (mean_a * mean_a + mean_b * mean_b + dtype(_SSIM_C1)))
  contrast_structure = ((dtype(2.) * covariance + dtype(_SSIM_C2))
                        / (variances + dtype(_SSIM_C2)))
  return ((luminance * contrast_structure).sum((0, 1), dtype=np.float64),
          contrast_structure.sum((0, 1), dtype=np.float64))


def _average_pool_2x2(x):
  """TF's MS-SSIM downsampling: odd sides repeat their last row/column, then
  each 2x2 block is averaged (float32, as TF's avg_pool)."""
  x = np.asarray(x, np.float32)
  height, width = x.shape[:2]
  if height % 2:
    x = np.concatenate([x, x[-1:]], 0)
  if width % 2:
    x = np.concatenate([x, x[:, -1:]], 1)
  height, width = x.shape[:2]
  blocks = x.reshape(height // 2, 2, width // 2, 2, -1)
  return ((blocks[:, 0, :, 0] + blocks[:, 0, :, 1]) + (blocks[:, 1, :, 0]
          + blocks[:, 1, :, 1])) * np.float32(0.25)


def bits_per_pixel(num_bytes, height, width):
  return 8. * num_bytes / (height * width)
