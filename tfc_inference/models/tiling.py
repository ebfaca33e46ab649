"""Tile-by-tile evaluation of the image transforms, so memory stays bounded.

The analysis and synthesis transforms are convolutional with a small receptive
field, so they can run on overlapping windows: each tile of the latent grid is
computed from a window that extends `halo` latent pixels (16 image pixels each) on
every side, and only the tile's interior is kept. Windows start on the latent
grid, so every strided convolution samples the same positions as on the whole
image, and at the image border a window is cut exactly where the whole image's
zero padding begins. The interior then equals the untiled result up to float
summation order (tests compare the two).

The iterative methods also need the input gradient of the distortion; it is
accumulated tile by tile as well (`squared_error`), so backpropagation never holds
more than one tile's activations.

A tile size is counted in latent pixels (`tile`); 0 means the whole image. The
decoder must synthesize with the encoder's tiles to repeat its reconstruction bit
for bit, so files record the tile size (see `file_format`).
"""

import contextlib
import math

import tensorflow as tf

from tfc_inference.models import frozen

# Image pixels per latent pixel (four stride-2 layers).
STRIDE = 16
# `choose_tile`'s default: 64 latent pixels (1024 image pixels) per tile, used
# when an image has more than AUTO_TILE_PIXELS pixels.
DEFAULT_TILE = 64
AUTO_TILE_PIXELS = 2 ** 21
# Bounds for tile sizes read from files: a tiny tile on a large image would make
# the decoder run millions of windows.
MIN_TILE = 2
MAX_TILES = 4096


class TilingError(ValueError):
  """A tile size that does not fit the image."""


def ranges(size, tile):
  """Splits `range(size)` into ceil(size / tile) near-equal [start, stop) parts."""
  if tile <= 0 or tile >= size:
    return [(0, size)]
  count = -(-size // tile)
  bounds = [i * size // count for i in range(count + 1)]
  return list(zip(bounds[:-1], bounds[1:]))


def num_tiles(latent_shape, tile):
  return len(ranges(latent_shape[0], tile)) * len(ranges(latent_shape[1], tile))


def check_tile(tile, latent_shape):
  """Raises TilingError unless `tile` is 0 or a bounded tiling of the latent grid."""
  if tile == 0:
    return
  if tile < MIN_TILE:
    raise TilingError(f"tile size {tile} is below the minimum of {MIN_TILE} latent "
                      f"pixels ({MIN_TILE * STRIDE} image pixels)")
  count = num_tiles(latent_shape, tile)
  if count > MAX_TILES:
    raise TilingError(f"tile size {tile} splits a {latent_shape[1]}x"
                      f"{latent_shape[0]} latent grid into {count} tiles (at most "
                      f"{MAX_TILES})")


def tile_from_pixels(tile_pixels):
  """A tile side in image pixels (0, or a multiple of STRIDE of at least
  MIN_TILE latent pixels) -> latent pixels; raises TilingError otherwise."""
  if tile_pixels < 0 or tile_pixels % STRIDE:
    raise TilingError(f"a tile size must be 0 or a positive multiple of {STRIDE} "
                      f"image pixels, not {tile_pixels}")
  tile = tile_pixels // STRIDE
  if 0 < tile < MIN_TILE:
    raise TilingError(f"tile size {tile_pixels} is below the minimum of "
                      f"{MIN_TILE * STRIDE} image pixels")
  return tile


def choose_tile(image_shape, tile_pixels=None):
  """The tile size (latent pixels) to code an image of `image_shape` (H, W, ...).

  `tile_pixels`: None picks DEFAULT_TILE above AUTO_TILE_PIXELS pixels and no
  tiling below; 0 never tiles; otherwise a positive multiple of STRIDE (image
  pixels per tile side).
  """
  height, width = image_shape[:2]
  if tile_pixels is None:
    return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else 0
  tile = tile_from_pixels(tile_pixels)
  latent_shape = (-(-height // STRIDE), -(-width // STRIDE))
  check_tile(tile, latent_shape)
  return 0 if tile >= max(latent_shape) else tile


def halo(transform):
  """Latent pixels of context a tile needs on each side for `transform`.

  The receptive radius of a stack of `tfc.SignalConv2D` layers (pointwise layers
  such as GDN add none), in latent pixels, rounded up: a layer whose input has
  `r` pixels per latent pixel reaches kernel_size // 2 (downsampling) or
  ceil((kernel_size // 2) / strides_up) (upsampling) of its input pixels.
  """
  radius, resolution = 0., None
  for layer in transform.layers:
    if not hasattr(layer, "kernel_support"):
      continue
    reach = max(layer.kernel_support) // 2
    down, up = max(layer.strides_down), max(layer.strides_up)
    if resolution is None:  # the first conv layer sees the input grid
      resolution = float(STRIDE) if down > 1 else 1.
    if up > 1:
      reach = -(-reach // up)
    radius += reach / resolution
    resolution = resolution / down * up
  return int(math.ceil(radius - 1e-9))


def _window(start, stop, size, margin):
  return max(0, start - margin), min(size, stop + margin)


def _after(tensor, dependencies):
  """`tensor`, evaluated only after `dependencies` (keeps tiles sequential in
  graphs, so their activations are never alive at the same time)."""
  if not dependencies:
    return tensor
  with tf.control_dependencies(dependencies):
    return tf.identity(tensor)


def _static_grid(tensor, what):
  height, width = tensor.shape[1:3]
  if height is None or width is None:
    raise TilingError(f"tiled {what} needs static spatial shapes")
  return int(height), int(width)


def _windows(height, width, tile, margin):
  """Per tile of a height x width latent grid, row by row: the tile
  ((r0, r1), (c0, c1)) and its window ((a0, a1), (b0, b1)) with `margin`."""
  for rows in ranges(height, tile):
    for cols in ranges(width, tile):
      yield (rows, cols), (_window(*rows, height, margin),
                           _window(*cols, width, margin))


def _apply(transform, inputs, height, width, tile, scale_in, scale_out):
  """`transform(inputs)` tile by tile, on a height x width latent grid whose
  pixels are `scale_in` input and `scale_out` output pixels wide."""
  margin = halo(transform)
  transform = frozen.snapshot(transform)
  rows, row, previous = [], [], []
  for ((r0, r1), (c0, c1)), ((a0, a1), (b0, b1)) in _windows(height, width, tile,
                                                              margin):
    window = inputs[:, scale_in * a0:scale_in * a1, scale_in * b0:scale_in * b1]
    out = transform(_after(window, previous))
    row.append(out[:, scale_out * (r0 - a0):scale_out * (r1 - a0),
                   scale_out * (c0 - b0):scale_out * (c1 - b0)])
    previous = row[-1:]
    if c1 == width:
      rows.append(tf.concat(row, 2))
      row = []
  return tf.concat(rows, 1)


def synthesize(transform, y, tile):
  """`transform(y)` ([B, h, w, C] -> [B, 16h, 16w, C']), tile by tile."""
  height, width = _static_grid(y, "synthesis")
  if tile <= 0 or (tile >= height and tile >= width):
    return transform(y)
  return _apply(transform, y, height, width, tile, 1, STRIDE)


def analyze(transform, x, tile):
  """`transform(x)` ([B, 16h, 16w, C] -> [B, h, w, C']), tile by tile."""
  height, width = _static_grid(x, "analysis")
  if height % STRIDE or width % STRIDE:
    raise TilingError(f"tiled analysis needs sides that are multiples of {STRIDE}")
  height, width = height // STRIDE, width // STRIDE
  if tile <= 0 or (tile >= height and tile >= width):
    return transform(x)
  return _apply(transform, x, height, width, tile, STRIDE, 1)


def mse_and_gradient(transform, x, y, tile, valid_shape=None):
  """Per-image MSE of `transform(y)` against `x` over the valid region, and its
  gradient w.r.t. `y`, both accumulated tile by tile.

  Each tile runs forward and backward under its own tape, so at most one tile's
  activations are alive. Call it outside any `tf.GradientTape` that should not
  record it (a caller's tape would otherwise record every tile's backward pass,
  and differentiating that is second order); the caller chains the returned
  gradient into its own, e.g. with `tape.gradient(..., output_gradients=...)`.

  Args:
    transform: the synthesis transform.
    x: target images [B, 16h, 16w, C] (0-255).
    y: latents [B, h, w, N].
    tile: tile size in latent pixels (0: one tile).
    valid_shape: (height, width) of the region that counts, or None for all.

  Returns:
    (mse [B], d mse / d y [B, h, w, N]).
  """
  height, width = _static_grid(y, "synthesis")
  valid_height, valid_width = (STRIDE * height, STRIDE * width) if (
      valid_shape is None) else (int(valid_shape[0]), int(valid_shape[1]))
  count = float(valid_height * valid_width * int(x.shape[-1]))
  margin = halo(transform)
  transform = frozen.snapshot(transform)
  total = tf.zeros(tf.shape(y)[:1], y.dtype)
  gradient = tf.zeros_like(y)
  previous = []
  for ((r0, r1), (c0, c1)), ((a0, a1), (b0, b1)) in _windows(height, width, tile,
                                                              margin):
    # The part of this tile's pixels that lies in the valid region.
    p0, p1 = STRIDE * r0, min(STRIDE * r1, valid_height)
    q0, q1 = STRIDE * c0, min(STRIDE * c1, valid_width)
    if p1 <= p0 or q1 <= q0:
      continue
    patch = _after(y[:, a0:a1, b0:b1], previous)
    with tf.GradientTape() as tape:
      tape.watch(patch)
      crop = (slice(None), slice(p0 - STRIDE * a0, p1 - STRIDE * a0),
              slice(q0 - STRIDE * b0, q1 - STRIDE * b0))
      error = frozen.reconstruction_error(
          transform, patch,
          x[:, STRIDE * a0:STRIDE * a1, STRIDE * b0:STRIDE * b1])[crop]
      errors = tf.reduce_sum(tf.square(error), axis=[1, 2, 3])
    # Images are independent, so the gradient of the batch sum is per image.
    patch_gradient = tape.gradient(errors, patch)
    gradient += tf.pad(patch_gradient, [[0, 0], [a0, height - a1],
                                        [b0, width - b1], [0, 0]])
    total += errors
    previous = [total, gradient]
  return total / count, gradient / count


def rd_gradients(tape, rate, y, sources, mse_and_gradient, lmbda):
  """Losses `rate + lmbda * mse` [B] and the gradients of their sum w.r.t.
  `sources`, when `tape` recorded `rate` [B] and the latents `y` the synthesis
  sees, and `mse_and_gradient` = (mse [B], d mse / d y) was computed outside it
  (by `mse_and_gradient`).

  `rate` itself must come from inside the tape's context: a rate rescaled after
  it (e.g. bits / num_pixels) is unconnected, and its gradient would silently
  be zero."""
  mse, d_mse = mse_and_gradient
  gradients = tape.gradient([rate, y], sources,
                            output_gradients=[tf.ones_like(rate), lmbda * d_mse])
  return rate + lmbda * mse, gradients


class TiledTransformsMixin:
  """Gives a model with `analysis_transform` and `synthesis_transform` methods
  that run them tile by tile while `tile` (latent pixels) is above 0."""

  tile = 0

  @contextlib.contextmanager
  def tiled(self, tile):
    """Context in which analysis and synthesis use tiles of `tile` latent pixels."""
    previous = self.tile
    self.tile = int(tile)
    try:
      yield self
    finally:
      self.tile = previous

  def run_analysis(self, x, analysis=None):
    """`analysis` (default: the model's analysis transform) of x, tile by tile."""
    return analyze(analysis or self.analysis_transform, x, self.tile)

  def run_synthesis(self, y, synthesis=None):
    """`synthesis` (default: the model's synthesis transform) of y, tile by tile."""
    return synthesize(synthesis or self.synthesis_transform, y, self.tile)
