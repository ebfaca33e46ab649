"""The scalar-quantizer baselines of Bayesian AC: uniform steps and 1-D k-means.

Both quantize the posterior means mu of the same VAE; their symbols are
zigzagged non-negative integers below 2^`bayesian_ac_tables.MAX_BITS`.
"""

import numpy as np

from tfc_inference.coding import file_format

UNIFORM_MAX_INDEX = 2 ** 22 - 1  # zigzagged indices stay below 2^MAX_BITS
KMEANS_ITERATIONS = 25


def zigzag(indices):
  """Integers -> symbols >= 1: 0 -> 1, 1 -> 2, -1 -> 3, 2 -> 4, -2 -> 5, ..."""
  indices = np.asarray(indices, np.int64)
  return np.where(indices > 0, 2 * indices, 1 - 2 * indices)


def unzigzag(symbols):
  symbols = np.asarray(symbols, np.int64)
  return np.where(symbols % 2 == 0, symbols // 2, (1 - symbols) // 2)


def uniform_quantize(mu, step):
  """(symbols, values) of y_hat = step * round(mu / step), indices clipped."""
  indices = np.clip(np.round(np.asarray(mu, np.float64) / step), -UNIFORM_MAX_INDEX,
                    UNIFORM_MAX_INDEX).astype(np.int64)
  return zigzag(indices), indices * float(step)


def kmeans_1d(samples, levels, iterations=KMEANS_ITERATIONS):
  """Lloyd's algorithm in 1-D: sorted centers [levels] of samples [S].

  Starts at the samples' quantiles (k + 1/2) / levels; an empty cluster restarts
  at the sample worst served by the other centers. Deterministic.
  """
  samples = np.sort(np.asarray(samples, np.float64).ravel())
  centers = np.quantile(samples, (np.arange(levels) + .5) / levels)
  for _ in range(iterations):
    assignment = nearest_center(samples, centers)
    counts = np.bincount(assignment, minlength=levels)
    sums = np.bincount(assignment, weights=samples, minlength=levels)
    updated = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
    empty = np.nonzero(counts == 0)[0]
    if empty.size:
      errors = (samples - updated[assignment]) ** 2
      worst = np.argsort(-errors, kind="stable")[:empty.size]
      updated[empty[:worst.size]] = samples[worst]
    updated = np.sort(updated)
    if np.array_equal(updated, centers):
      break
    centers = updated
  return centers


def nearest_center(x, centers):
  """Index of the nearest of sorted `centers` for each x (ties: the lower one)."""
  boundaries = .5 * (centers[1:] + centers[:-1])
  return np.searchsorted(boundaries, x, side="left")


def kmeans_quantize(mu, centers):
  """(symbols, values) with per-channel sorted centers [N, K] (NaN-padded)."""
  mu = np.asarray(mu, np.float64)
  symbols = np.empty(mu.shape, np.int64)
  values = np.empty(mu.shape)
  for c in range(mu.shape[-1]):
    grid = centers[c][~np.isnan(centers[c])]
    index = nearest_center(mu[..., c], grid)
    symbols[..., c] = index + 1
    values[..., c] = grid[index]
  return symbols, values


def kmeans_values(symbols, centers):
  symbols = np.asarray(symbols, np.int64)
  values = np.empty(symbols.shape)
  for c in range(symbols.shape[-1]):
    grid = centers[c][~np.isnan(centers[c])]
    if np.any(symbols[..., c] > len(grid)):
      raise file_format.FormatError("k-means index out of range")
    values[..., c] = grid[symbols[..., c] - 1]
  return values
