"""Procedural test images: smooth shapes, gradients and texture, uint8 RGB.

Used by the tests (the project ships no third-party images) and as the demo's
fallback image. Deterministic for a given seed.
"""

import numpy as np


def test_image(height=128, width=128, seed=0):
  """A natural-looking-enough image `[height, width, 3]` uint8."""
  rng = np.random.default_rng(seed)
  yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width),
                       indexing="ij")
  image = np.zeros((height, width, 3))
  for c in range(3):
    image[..., c] = 80 + 60 * rng.uniform() * xx + 60 * rng.uniform() * yy
  for _ in range(6):  # soft blobs
    cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
    color = rng.uniform(-90, 90, size=3)
    mask = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
    image += mask[..., None] * color
  for _ in range(3):  # oriented stripes
    angle, freq = rng.uniform(0, np.pi), rng.uniform(4, 20)
    phase = np.cos(angle) * xx + np.sin(angle) * yy
    image += 15 * np.sin(2 * np.pi * freq * phase)[..., None] * rng.uniform(
        -1, 1, size=3)
  image += rng.normal(0, 4, size=image.shape)  # sensor noise
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def image_batch(count, height, width, seed=0):
  return np.stack([test_image(height, width, seed + i) for i in range(count)])
