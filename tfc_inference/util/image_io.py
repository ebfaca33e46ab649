"""Reading, padding and writing images.

Everything returns uint8 RGB arrays `[H, W, 3]`. Inputs that are not 8-bit RGB are
converted (grayscale and palette -> RGB, alpha dropped, 16 bit -> 8 bit) with a
warning, and unreadable inputs raise `ImageError` with a one-line message.
"""

import glob as glob_lib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfc_inference.util import output_paths

# The transforms downsample by 2**4 (y) and 2**6 (z).
SIZE_MULTIPLE = 64


class ImageError(ValueError):
  """An input that cannot be used as an image; the message is one line."""


def _png_bit_depth(data):
  if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26:
    return data[24]
  return None


def decode_image(data, source="<bytes>", warn=logging.warning):
  """Decodes encoded image bytes (PNG, JPEG, GIF, BMP) to uint8 `[H, W, 3]`."""
  if not data:
    raise ImageError(f"{source}: file is empty")
  bit_depth = _png_bit_depth(data)
  try:
    if bit_depth == 16:
      image = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    else:
      image = tf.io.decode_image(data, channels=0, expand_animations=False).numpy()
  except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    raise ImageError(f"{source}: not a readable image ({message})") from None
  if image.dtype == np.uint16:
    warn(f"{source}: 16-bit image converted to 8 bit")
    image = np.round(image.astype(np.float64) / 257.).astype(np.uint8)
  if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
    raise ImageError(f"{source}: image has no pixels")
  channels = image.shape[-1]
  if channels in (2, 4):
    warn(f"{source}: alpha channel dropped")
    image = image[..., :channels - 1]
  if image.shape[-1] == 1:
    warn(f"{source}: grayscale image converted to RGB")
    image = np.repeat(image, 3, axis=-1)
  return np.ascontiguousarray(image)


def read_image(path, warn=logging.warning):
  """Reads one image file as uint8 `[H, W, 3]`."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as error:
    raise ImageError(f"{path}: cannot read ({error.strerror})") from None
  return decode_image(data, source=path, warn=warn)


def expand_inputs(spec, warn=logging.warning):
  """Resolves an INPUT argument to a list of (name, uint8 image) pairs.

  `spec` is an image file, a glob pattern, or a `.npy` file holding one uint8 image
  `[H, W, 3]` or a batch `[N, H, W, 3]`. Names are used for output file names.
  """
  if spec.endswith(".npy") and os.path.isfile(spec):
    try:
      array = np.load(spec, allow_pickle=False)
    except (ValueError, OSError) as error:
      raise ImageError(f"{spec}: not a readable .npy file ({error})") from None
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
      raise ImageError(f"{spec}: expected uint8 [N, H, W, 3] or [H, W, 3], got "
                       f"{array.dtype} {list(array.shape)}")
    if array.ndim == 3:
      array = array[None]
    stem = os.path.splitext(os.path.basename(spec))[0]
    return [(f"{stem}_{i:04d}", np.ascontiguousarray(a))
            for i, a in enumerate(array)]
  paths = [spec] if os.path.exists(spec) else sorted(glob_lib.glob(spec))
  if not paths:
    raise ImageError(f"{spec}: no such file (and no file matches it as a glob)")
  result = []
  for path in paths:
    if os.path.isdir(path):
      raise ImageError(f"{path}: is a directory; give a file or a glob")
    name = os.path.splitext(os.path.basename(path))[0]
    result.append((name, read_image(path, warn=warn)))
  return result


def pad_to_multiple(image, multiple=SIZE_MULTIPLE):
  """Edge-pads uint8/float `[..., H, W, C]` so H and W are multiples of `multiple`."""
  height, width = image.shape[-3], image.shape[-2]
  pad_h = -height % multiple
  pad_w = -width % multiple
  pads = [(0, 0)] * (image.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
  return np.pad(image, pads, mode="edge")


def to_uint8(x_hat):
  """Float reconstruction in [0, 255] -> uint8 (round half to even, as tf.round)."""
  x = np.array(x_hat, np.float32)  # one working copy, clipped and rounded in place
  np.clip(x, 0., 255., out=x)
  return np.round(x, out=x).astype(np.uint8)


def encode_png(image):
  return tf.io.encode_png(image).numpy()


def write_png(path, image, overwrite=True):
  """Encodes and writes a uint8 [H, W, C] image; nothing is left behind on error."""
  output_paths.write_atomic(path, encode_png(image), overwrite)


def center_crop(image, height, width):
  """Central `height` x `width` window of `[H, W, C]` (clipped to the image)."""
  top = max(0, (image.shape[0] - height) // 2)
  left = max(0, (image.shape[1] - width) // 2)
  return image[top:top + height, left:left + width]


def load_image_set(pattern, limit=None, crop=None):
  """Sorted images of a glob as (stem, uint8 image) pairs, for benchmarks.

  `limit` keeps the first N files; `crop` ("HxW") takes central crops.
  """
  paths = sorted(glob_lib.glob(pattern))[:limit]
  if not paths:
    raise ImageError(f"{pattern}: matches no file")
  images = []
  for path in paths:
    image = read_image(path)
    if crop:
      height, width = (int(s) for s in crop.lower().split("x"))
      image = center_crop(image, height, width)
    images.append((os.path.splitext(os.path.basename(path))[0], image))
  return images
