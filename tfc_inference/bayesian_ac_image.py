"""Variable-bitrate image compression with one VAE: Bayesian AC and its baselines.

Yang, Bamler & Mandt (ICML 2020): the `vae.BLS2017VAE` posterior q(y|x) = N(mu, sigma^2)
is coded latent by latent with Bayesian arithmetic coding (`bayesian_ac.encode`,
Algorithm 1) under an *empirical prior*, at any rate penalty lambda, with the one
trained model. Baselines on the same model and latents:

  * uniform: y_hat = s * round(mu / s) for a step size s;
  * kmeans:  y_hat = the nearest of K per-channel grid points (1-D k-means, Lloyd);
  * jpeg:    tf.io.encode_jpeg (chroma 4:2:0) at a quality setting.

Coding tables (fitted once per run on training images, `fit_coding_tables`, and
stored in `weights.npz` under `tables/`, see `CodingTables`):

  * The empirical prior: per channel c, a `tfc.DeepFactorized` density fitted by
    maximum likelihood to the posterior means mu of the training images (spatial
    positions treated as i.i.d.). tfc's DeepFactorized has a CDF but no quantile
    function, and Algorithm 1 evaluates F^-1 ~50 times per image, so for coding its
    logit-CDF l_c(x) = logit F_c(x) is tabulated at `NUM_KNOTS` points uniformly
    spaced in logit in [-LOGIT_MAX, LOGIT_MAX] (found once by bisection) and
    interpolated linearly (extrapolated linearly beyond). The tabulated
    `TabulatedPrior` is itself an exact, strictly increasing CDF with a closed-form
    inverse, and it is what encoder and decoder share; it differs from the fitted
    density by far less than the code points' resolution.
  * Symbol distributions: per method, per grid setting (lambda, step size, number
    of levels) and per latent channel, the empirical distribution of the symbols the
    method produces on the training latents (`bayesian_ac.fit_symbol_distribution`:
    a categorical with an escape for unseen symbols). Per-channel tables let a
    collapsed channel (mu = 0, sigma = 1 everywhere) cost ~0 bits. Bayesian AC at a
    lambda off the fitted grid uses the table of the nearest grid lambda (in log).

Files (`file_format.CompressedFile`, method "bayesian_ac" for all three quantizers):
`y_shape` is the latent (h, w), `z_shape` is (0, 0), `extra` is `struct.pack("<BdH",
quantizer id, parameter, table index)` with parameter = lambda, step or K, and the
one payload string is a single tfc range-coder string of all channels, channel 0
first, each channel's symbols in C order. The fingerprint covers weights and tables.

Units: bpp from real file sizes (header included), est_bpp from the symbols'
information content under the tables, PSNR in dB, MS-SSIM linear, times in seconds,
bits per latent and KL per latent in bits.
"""

import csv
import dataclasses
import glob as glob_lib
import math
import os
import struct
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference import bayesian_ac
from tfc_inference import checkpoints
from tfc_inference import file_format
from tfc_inference import image_io
from tfc_inference import metrics
from tfc_inference import runner
from tfc_inference import vae

METHOD = "bayesian_ac"  # the file_format method of every file written here
QUANTIZERS = {"bayesian_ac": 0, "uniform": 1, "kmeans": 2}
QUANTIZER_NAMES = {v: k for k, v in QUANTIZERS.items()}
# The CSV column naming each method's setting.
PARAMETER_NAMES = {"bayesian_ac": "lambda", "uniform": "step", "kmeans": "levels",
                   "jpeg": "quality"}
ALL_METHODS = ("bayesian_ac", "uniform", "kmeans", "jpeg")

# The shipped run's grid, the same as the evaluation runner's sweep: rates from
# about 0.1 to 1.7 bpp on Kodak (lambda >= 10 gives the low-rate end, where most
# latents take the 1-bit code point).
DEFAULT_LAMBDAS = runner.DEFAULT_BAC_LAMBDAS
DEFAULT_UNIFORM_STEPS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.)
DEFAULT_KMEANS_LEVELS = (2, 3, 4, 6, 8, 12, 16, 24, 32)
DEFAULT_JPEG_QUALITIES = runner.DEFAULT_JPEG_QUALITIES

MAX_BITS = 24  # most bits of a Bayesian AC code point (and of any symbol)
ALPHABET_LIMIT = 1024  # most symbols per channel table; others are escaped
MIN_COUNT = 2  # symbols seen fewer times in training are escaped
NUM_KNOTS = 2049
LOGIT_MAX = 20.  # 2^-24 has logit -16.6: 24-bit code points lie inside the table
UNIFORM_MAX_INDEX = 2 ** 22 - 1  # zigzagged indices stay below 2^MAX_BITS
KMEANS_ITERATIONS = 25
_EXTRA = struct.Struct("<BdH")
# A channel whose mean KL is below this many bits per latent is reported collapsed.
COLLAPSED_KL_BITS = 0.01


# ---------------------------------------------------------------- empirical prior

class TabulatedPrior:
  """Per-channel CDF F_c(x) = sigmoid(l_c(x)), l_c piecewise linear, with its inverse.

  `knots[c, j]` is the x at which l_c equals the j-th of `K` logits spaced uniformly
  in [-logit_max, logit_max]; between knots l_c is linear, beyond them it continues
  the outermost segments. Arrays passed to `cdf` and `quantile` have the channel as
  their last axis (or broadcast against [N]); all arithmetic is elementwise float64,
  so results do not depend on array shapes.
  """

  def __init__(self, knots, logit_max=LOGIT_MAX):
    self.knots = np.ascontiguousarray(knots, np.float64)
    if self.knots.ndim != 2 or self.knots.shape[1] < 2:
      raise ValueError("knots must have shape [channels, K >= 2]")
    if not np.all(np.diff(self.knots, axis=1) > 0):
      raise ValueError("knots must increase strictly along each channel")
    self.logit_max = float(logit_max)
    self.num_channels, self.num_knots = self.knots.shape
    self.grid = np.linspace(-self.logit_max, self.logit_max, self.num_knots)
    self.logit_step = self.grid[1] - self.grid[0]
    self._widths = np.diff(self.knots, axis=1)  # [N, K - 1]
    # Segment j of channel c as x = intercept + slope * logit (for `quantile`).
    slopes = self._widths / self.logit_step
    self._slopes = slopes.ravel()
    self._intercepts = (self.knots[:, :-1] - self.grid[:-1] * slopes).ravel()
    self._channel_offsets = np.arange(self.num_channels) * (self.num_knots - 1)

  def _broadcast(self, x):
    x = np.asarray(x, np.float64)
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, (self.num_channels,)))

  def logits(self, x):
    """l_c(x), float64 with x's (broadcast) shape."""
    x = self._broadcast(x)
    out = np.empty(x.shape)
    for c in range(self.num_channels):
      xc = x[..., c]
      j = np.clip(np.searchsorted(self.knots[c], xc, side="right"), 1,
                  self.num_knots - 1) - 1
      out[..., c] = self.grid[j] + (xc - self.knots[c, j]) * (
          self.logit_step / self._widths[c, j])
    return out

  def cdf(self, x):
    logits = self.logits(x)
    # A sigmoid that keeps relative precision in both tails.
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1. / (1. + e), e / (1. + e))

  def quantile(self, xi):
    """F^-1(xi) for xi in (0, 1), float64 with xi's (broadcast) shape."""
    xi = self._broadcast(xi)
    with np.errstate(divide="ignore", invalid="ignore"):
      logits = np.log(xi / (1. - xi))
    logits = np.fmin(np.fmax(logits, -700.), 700.)  # fmax also maps NaN to -700
    segment = np.floor((logits + self.logit_max) * (1. / self.logit_step))
    segment = np.minimum(np.maximum(segment, 0.), self.num_knots - 2.)
    flat = self._channel_offsets + segment.astype(np.int64)
    return np.take(self._intercepts, flat) + np.take(self._slopes, flat) * logits

  def functions(self):
    """(quantile_fn, cdf_fn) for `bayesian_ac.encode` / `decode`."""
    return self.quantile, self.cdf


def fit_deep_factorized(means, steps=1000, batchsize=4096, lr=1e-2, seed=0,
                        print_fn=None):
  """Maximum-likelihood `tfc.DeepFactorized(batch_shape=[N])` of means [S, N].

  Adam on random minibatches of rows; the learning rate drops by 10 for the last
  20% of steps. Returns (the distribution, its mean negative log-likelihood per
  latent in nats on all of `means`).
  """
  means = np.asarray(means, np.float32)
  num_samples, channels = means.shape
  prior = tfc.DeepFactorized(batch_shape=[channels])
  schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay(
      [max(1, int(.8 * steps))], [lr, lr / 10.])
  optimizer = tf.keras.optimizers.Adam(schedule)
  data = tf.constant(means)
  variables = prior.trainable_variables

  def nll(batch):
    # Points where the fitted density underflows would give inf; bounding the
    # log-density keeps the gradients finite (and such points out of the fit).
    return -tf.reduce_mean(tf.maximum(prior.log_prob(batch), -100.))

  # Eager on purpose: this small fit crashed (segfault in TF's graph runtime)
  # intermittently as a tf.function on TF 2.14 CPU; eager costs only seconds.
  def step(indices):
    with tf.GradientTape() as tape:
      loss = nll(tf.gather(data, indices))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  rng = np.random.default_rng(seed)
  batchsize = min(batchsize, num_samples)
  for i in range(steps):
    loss = step(tf.constant(rng.integers(0, num_samples, batchsize)))
    if print_fn and (i + 1) % max(1, steps // 4) == 0:
      print_fn(f"  empirical prior: step {i + 1}/{steps}  nll {float(loss):.4f} "
               "nats/latent")
  total = np.mean([float(nll(data[i:i + 65536]))
                   for i in range(0, num_samples, 65536)])
  return prior, float(total)


def _short_name(variable):
  return variable.name.split("/")[-1].split(":")[0]


def deep_factorized_arrays(prior):
  """Dict `prior/<variable>` -> array of a DeepFactorized's parameters."""
  return {f"prior/{_short_name(v)}": v.numpy() for v in prior.variables}


def deep_factorized_from_arrays(arrays, channels, dtype=tf.float64):
  """Rebuilds a DeepFactorized from `deep_factorized_arrays` (any float dtype)."""
  prior = tfc.DeepFactorized(batch_shape=[channels], dtype=dtype)
  for v in prior.variables:
    v.assign(tf.cast(arrays[f"prior/{_short_name(v)}"], dtype))
  return prior


def tabulate_prior(prior, num_knots=NUM_KNOTS, logit_max=LOGIT_MAX):
  """Knots [N, K] of a (float64) DeepFactorized: l_c(knots[c, j]) = grid[j]."""
  channels = prior.batch_shape.num_elements()
  grid = tf.constant(np.linspace(-logit_max, logit_max, num_knots)[:, None],
                     tf.float64)

  def logits(x):
    x = tf.cast(x, prior.dtype)
    return tf.cast(prior.log_cdf(x) - prior.log_survival_function(x), tf.float64)

  # Bracket [-logit_max - 1, logit_max + 1] by doubling, then bisect (monotone l_c).
  low = -np.ones([channels])
  high = np.ones([channels])
  for _ in range(200):
    low_ok = logits(low[None]).numpy()[0] < -logit_max - 1.
    high_ok = logits(high[None]).numpy()[0] > logit_max + 1.
    if np.all(low_ok) and np.all(high_ok):
      break
    low = np.where(low_ok, low, 2. * low)
    high = np.where(high_ok, high, 2. * high)
  else:
    raise ValueError("the empirical prior's CDF does not reach its tails")
  low = tf.constant(np.broadcast_to(low, [num_knots, channels]))
  high = tf.constant(np.broadcast_to(high, [num_knots, channels]))
  for _ in range(120):
    middle = .5 * (low + high)
    below = logits(middle) < grid
    low = tf.where(below, middle, low)
    high = tf.where(below, high, middle)
  knots = (.5 * (low + high)).numpy().T.copy()
  # Enforce strict increase (a near-singular density may tie neighbours).
  for j in range(1, num_knots):
    knots[:, j] = np.maximum(knots[:, j], np.nextafter(knots[:, j - 1], np.inf))
  return knots


# ---------------------------------------------------------------- symbol tables

@dataclasses.dataclass
class SymbolTables:
  """Per (setting g, channel c) symbol distributions of one quantizer."""
  settings: np.ndarray  # [G] lambda / step / levels
  distributions: List[List[bayesian_ac.SymbolDistribution]]  # [G][N]

  def to_arrays(self, prefix):
    flat = [d for row in self.distributions for d in row]
    counts = np.array([len(d.symbols) for d in flat], np.int64)
    return {
        f"{prefix}/settings": np.asarray(self.settings),
        f"{prefix}/symbol_counts": counts,
        f"{prefix}/symbols": np.concatenate(
            [d.symbols for d in flat] + [np.zeros([0], np.int64)]).astype(np.int64),
        f"{prefix}/probabilities": np.concatenate(
            [d.probabilities for d in flat]).astype(np.float64),
        f"{prefix}/bits_probabilities": np.stack(
            [d.bits_probabilities for d in flat]).astype(np.float64),
        f"{prefix}/max_bits": np.array([d.max_bits for d in flat], np.int64),
    }

  @classmethod
  def from_arrays(cls, arrays, prefix, channels):
    settings = arrays[f"{prefix}/settings"]
    counts = arrays[f"{prefix}/symbol_counts"]
    symbols = np.split(arrays[f"{prefix}/symbols"], np.cumsum(counts)[:-1])
    probabilities = np.split(arrays[f"{prefix}/probabilities"],
                             np.cumsum(counts + 1)[:-1])
    flat = [bayesian_ac.SymbolDistribution(
        symbols=s.astype(np.int64), probabilities=p.astype(np.float64),
        bits_probabilities=b.astype(np.float64), max_bits=int(m))
            for s, p, b, m in zip(symbols, probabilities,
                                  arrays[f"{prefix}/bits_probabilities"],
                                  arrays[f"{prefix}/max_bits"])]
    if len(flat) != len(settings) * channels:
      raise checkpoints.CheckpointError(
          f"coding tables {prefix!r} do not match {channels} channels")
    return cls(settings, [flat[g * channels:(g + 1) * channels]
                          for g in range(len(settings))])


def fit_channel_distributions(symbols, alphabet_limit=ALPHABET_LIMIT,
                              max_bits=MAX_BITS, min_count=MIN_COUNT):
  """One `SymbolDistribution` per channel of symbols [..., N]."""
  symbols = np.asarray(symbols, np.int64)
  symbols = symbols.reshape(-1, symbols.shape[-1])
  return [bayesian_ac.fit_symbol_distribution(
      [symbols[:, c]], alphabet_limit, max_bits=max_bits, min_count=min_count)
          for c in range(symbols.shape[1])]


# ---------------------------------------------------------------- entropy coding
# One range-coded string for all channels (each with its own distribution), in the
# layout of `bayesian_ac.encode_streams`; channel 0 is read first.

def _channel_major(symbols):
  symbols = np.asarray(symbols, np.int64)
  return symbols.reshape(-1, symbols.shape[-1]).T


def code_channels(symbols, tables):
  """Entropy codes symbols [..., N] into bytes; `tables`: a
  `bayesian_ac.RangeCodingTables` with one distribution per channel."""
  columns = _channel_major(symbols)
  if len(columns) != len(tables.distributions):
    raise ValueError(f"{len(columns)} channels but {len(tables.distributions)} "
                     "tables")
  return bayesian_ac.encode_streams(list(columns), tables)


def decode_channels(data, tables, shape):
  """Inverse of `code_channels`: int64 symbols of `shape` [..., N]."""
  count = int(np.prod(shape[:-1]))
  try:
    columns = bayesian_ac.decode_streams(
        data, tables, [count] * len(tables.distributions))
  except ValueError as error:
    raise file_format.FormatError(str(error)) from error
  return np.stack(columns, axis=-1).reshape(shape)


def channel_bits(symbols, distributions):
  """Ideal code length per channel (bits, float64 [N]) of symbols [..., N]."""
  return np.array([bayesian_ac.information_content_bits(column, d)
                   for column, d in zip(_channel_major(symbols), distributions)])


# ---------------------------------------------------------------- quantizers

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


# ---------------------------------------------------------------- tables

@dataclasses.dataclass
class CodingTables:
  """Everything besides the VAE weights that encoder and decoder share."""
  prior: TabulatedPrior
  symbol_tables: Dict[str, SymbolTables]  # quantizer -> tables
  kmeans_centers: np.ndarray  # [G, N, max levels], NaN-padded
  max_bits: int = MAX_BITS

  @classmethod
  def from_arrays(cls, arrays, channels):
    if "prior/knots" not in arrays:
      raise checkpoints.CheckpointError(
          "run has no fitted coding tables (empirical prior, symbol tables); "
          "run `examples/bayesian_ac.py fit RUNNAME` first")
    prior = TabulatedPrior(arrays["prior/knots"], float(arrays["prior/logit_max"]))
    if prior.num_channels != channels:
      raise checkpoints.CheckpointError(
          f"empirical prior has {prior.num_channels} channels, model {channels}")
    return cls(prior=prior,
               symbol_tables={q: SymbolTables.from_arrays(arrays, q, channels)
                              for q in QUANTIZERS},
               kmeans_centers=arrays["kmeans/centers"],
               max_bits=int(arrays["bayesian_ac/code_point_max_bits"]))

  def settings(self, quantizer):
    return self.symbol_tables[quantizer].settings


def _subsample_rows(mus, sigmas, max_rows, rng):
  mu = np.concatenate([m.reshape(-1, m.shape[-1]) for m in mus])
  sigma = np.concatenate([s.reshape(-1, s.shape[-1]) for s in sigmas])
  if len(mu) > max_rows:
    keep = np.sort(rng.choice(len(mu), max_rows, replace=False))
    mu, sigma = mu[keep], sigma[keep]
  return mu.astype(np.float64), sigma.astype(np.float64)


def bayesian_ac_symbols(prior, mu, sigma, lmbda, max_bits=MAX_BITS, chunk=16384):
  """Code points of rows [S, N] (or any [..., N]) in chunks; returns CodePoints."""
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  quantile_fn, cdf_fn = prior.functions()
  if mu.ndim != 2 or len(mu) <= chunk:
    return bayesian_ac.encode(mu, sigma, quantile_fn, cdf_fn, lmbda, max_bits)
  parts = [bayesian_ac.encode(mu[i:i + chunk], sigma[i:i + chunk], quantile_fn,
                              cdf_fn, lmbda, max_bits)
           for i in range(0, len(mu), chunk)]
  return bayesian_ac.CodePoints(*[
      np.concatenate([getattr(p, f.name) for p in parts])
      for f in dataclasses.fields(bayesian_ac.CodePoints)])


def fit_coding_tables(mus, sigmas, lambdas=DEFAULT_LAMBDAS,
                      uniform_steps=DEFAULT_UNIFORM_STEPS,
                      kmeans_levels=DEFAULT_KMEANS_LEVELS, prior_steps=1000,
                      prior_lr=1e-2, max_rows=32768, alphabet_limit=ALPHABET_LIMIT,
                      max_bits=MAX_BITS, seed=0, print_fn=None):
  """Fits all coding tables on training posteriors; returns (arrays, info).

  Args:
    mus, sigmas: lists of posterior means / standard deviations [..., N] (one
      entry per training image; positions are pooled as i.i.d. samples).
    lambdas, uniform_steps, kmeans_levels: the grids of settings that get tables.
    prior_steps, prior_lr: Adam steps / learning rate of the DeepFactorized fit (on
      all positions).
    max_rows: positions (random, seeded) used for symbol tables and k-means.
    alphabet_limit, max_bits: of each per-channel `SymbolDistribution`.
  Returns:
    `arrays`, the dict to store under `tables/` (see `CodingTables.from_arrays`),
    and `info`, a JSON-able summary.
  """
  say = print_fn or (lambda message: None)
  if not mus:
    raise ValueError("no training latents to fit the coding tables on")
  lambdas = sorted(float(v) for v in lambdas)
  uniform_steps = sorted(float(v) for v in uniform_steps)
  kmeans_levels = sorted(int(v) for v in kmeans_levels)
  if min(lambdas) < 0 or min(uniform_steps) <= 0 or min(kmeans_levels) < 1:
    raise ValueError("lambdas must be >= 0, steps > 0 and levels >= 1")
  rng = np.random.default_rng(seed)
  all_means = np.concatenate([m.reshape(-1, m.shape[-1]) for m in mus])
  channels = all_means.shape[1]
  start = time.time()
  say(f"fitting the empirical prior (DeepFactorized, {channels} channels) on "
      f"{len(all_means)} positions")
  prior_float32, nll = fit_deep_factorized(all_means, steps=prior_steps, lr=prior_lr,
                                           seed=seed, print_fn=say)
  arrays = deep_factorized_arrays(prior_float32)
  prior64 = deep_factorized_from_arrays(arrays, channels, tf.float64)
  arrays["prior/knots"] = tabulate_prior(prior64)
  arrays["prior/logit_max"] = np.float64(LOGIT_MAX)
  arrays["bayesian_ac/code_point_max_bits"] = np.int64(max_bits)
  prior = TabulatedPrior(arrays["prior/knots"], LOGIT_MAX)
  mu, sigma = _subsample_rows(mus, sigmas, max_rows, rng)
  say(f"fitting symbol tables on {len(mu)} positions")
  fit = lambda s: fit_channel_distributions(s, alphabet_limit, max_bits)  # noqa: E731

  tables = {}
  rows = []
  for lmbda in lambdas:
    rows.append(fit(bayesian_ac_symbols(prior, mu, sigma, lmbda, max_bits).symbols))
  tables["bayesian_ac"] = SymbolTables(np.array(lambdas, np.float64), rows)
  tables["uniform"] = SymbolTables(
      np.array(uniform_steps, np.float64),
      [fit(uniform_quantize(mu, step)[0]) for step in uniform_steps])
  centers = np.full([len(kmeans_levels), channels, max(kmeans_levels)], np.nan)
  rows = []
  for g, levels in enumerate(kmeans_levels):
    for c in range(channels):
      centers[g, c, :levels] = kmeans_1d(mu[:, c], levels)
    rows.append(fit(kmeans_quantize(mu, centers[g])[0]))
  tables["kmeans"] = SymbolTables(np.array(kmeans_levels, np.int64), rows)
  arrays["kmeans/centers"] = centers
  for name, table in tables.items():
    arrays.update(table.to_arrays(name))
  info = dict(fit_positions=int(len(all_means)), table_positions=int(len(mu)),
              prior_nll_nats_per_latent=nll, prior_steps=prior_steps,
              lambdas=lambdas, uniform_steps=uniform_steps,
              kmeans_levels=kmeans_levels, max_bits=max_bits,
              alphabet_limit=alphabet_limit, seconds=time.time() - start)
  say(f"coding tables fitted in {info['seconds']:.0f} s")
  return arrays, info


# ---------------------------------------------------------------- the codec

def pad_image(image):
  """uint8 [H, W, 3] -> float32 [1, H', W', 3], edge-padded to multiples of 16."""
  return tf.constant(image_io.pad_to_multiple(image, vae.SIZE_MULTIPLE)[None],
                     tf.float32)


def latent_shape(image_shape):
  return tuple(-(-int(s) // vae.SIZE_MULTIPLE) for s in image_shape[:2])


@dataclasses.dataclass
class Posterior:
  mu: np.ndarray  # float64 [h, w, N]
  sigma: np.ndarray  # float64 [h, w, N]
  image_shape: tuple  # (H, W) before padding

  def kl_bits(self):
    """KL(q || N(0, 1)) per latent in bits, float64 [h, w, N]."""
    kl = .5 * (self.mu ** 2 + self.sigma ** 2 - 1.) - np.log(self.sigma)
    return kl / np.log(2.)


@dataclasses.dataclass
class Quantized:
  quantizer: str
  setting: float  # the requested lambda / step / levels
  table_index: int
  symbols: np.ndarray  # int64 [h, w, N]
  values: np.ndarray  # float64 [h, w, N], the latents the decoder synthesizes


def check_header(compressed, max_pixels=None):
  """Validates a Bayesian AC file's header before any decoding (FormatError).
  Returns (quantizer, setting, table index)."""
  if compressed.method != METHOD:
    raise file_format.FormatError(
        f"a {compressed.method!r} file, not a {METHOD} file")
  file_format.check_geometry(
      compressed, lambda shape: (latent_shape(shape), (0, 0)), max_pixels,
      strings=1)
  if len(compressed.extra) != _EXTRA.size:
    raise file_format.FormatError("malformed bayesian_ac header")
  quantizer_id, setting, index = _EXTRA.unpack(compressed.extra)
  quantizer = QUANTIZER_NAMES.get(quantizer_id)
  if quantizer is None or not math.isfinite(setting):
    raise file_format.FormatError("unknown quantizer or setting in the header")
  return quantizer, setting, index


class ImageCodec:
  """A loaded run: the VAE, its coding tables, its name and fingerprint."""

  def __init__(self, model, tables, run_name):
    self.model = model
    self.run_name = run_name
    self.fingerprint = vae.fingerprint(model.weight_arrays(), tables)
    self.tables = CodingTables.from_arrays(tables, model.num_filters)
    self.num_channels = model.num_filters
    self._range_tables = {}

  @classmethod
  def load(cls, run, checkpoint_dir=None, name_only=False):
    model, tables, _, run_name = vae.load_run(run, checkpoint_dir, name_only)
    return cls(model, tables, run_name)

  # ---- analysis and synthesis
  def analyze(self, image):
    """q(y|x) of one uint8 image [H, W, 3]."""
    mu, sigma = self.model.posterior(pad_image(image))
    return Posterior(mu[0].numpy().astype(np.float64),
                     sigma[0].numpy().astype(np.float64), tuple(image.shape[:2]))

  def reconstruct(self, values, image_shape):
    """uint8 [H, W, 3] synthesized from latent values [h, w, N]."""
    x_hat = self.model.synthesize(tf.constant(values[None], tf.float32))[0]
    return image_io.to_uint8(x_hat[:image_shape[0], :image_shape[1]].numpy())

  # ---- quantization
  def table_index(self, quantizer, setting):
    """The table used at `setting`: nearest lambda in log; exact step / levels."""
    settings = np.asarray(self.tables.settings(quantizer), np.float64)
    if quantizer == "bayesian_ac":
      if not setting >= 0 or not math.isfinite(setting):
        raise ValueError(f"lambda must be a finite number >= 0, got {setting}")
      floor = max(settings.min(), 1e-12) * 1e-3
      return int(np.argmin(np.abs(np.log(np.maximum(settings, floor))
                                  - np.log(max(setting, floor)))))
    matches = np.nonzero(np.isclose(settings, setting, rtol=1e-9, atol=0))[0]
    if not matches.size:
      listed = ", ".join(f"{s:g}" for s in settings)
      raise ValueError(f"{quantizer} has coding tables only for {listed}; "
                       f"got {setting:g}")
    return int(matches[0])

  def quantize(self, posterior, quantizer, setting):
    index = self.table_index(quantizer, setting)
    if quantizer == "bayesian_ac":
      points = bayesian_ac_symbols(self.tables.prior, posterior.mu, posterior.sigma,
                                   float(setting), self.tables.max_bits)
      symbols, values = points.symbols, points.values
    elif quantizer == "uniform":
      symbols, values = uniform_quantize(
          posterior.mu, float(self.tables.settings("uniform")[index]))
    elif quantizer == "kmeans":
      symbols, values = kmeans_quantize(posterior.mu,
                                        self.tables.kmeans_centers[index])
    else:
      raise ValueError(f"unknown quantizer {quantizer!r}")
    return Quantized(quantizer, float(setting), index, symbols, values)

  def dequantize(self, quantizer, table_index, symbols):
    if quantizer == "bayesian_ac":
      return bayesian_ac.decode(symbols, self.tables.prior.quantile)
    if quantizer == "uniform":
      step = float(self.tables.settings("uniform")[table_index])
      return unzigzag(symbols) * step
    return kmeans_values(symbols, self.tables.kmeans_centers[table_index])

  def distributions(self, quantizer, table_index):
    return self.tables.symbol_tables[quantizer].distributions[table_index]

  def range_tables(self, quantizer, table_index):
    """The range coder's lookup for one setting, built once per codec (building
    it quantizes every channel's CDF, which would dominate each file's time)."""
    key = (quantizer, table_index)
    if key not in self._range_tables:
      self._range_tables[key] = bayesian_ac.RangeCodingTables(
          self.distributions(quantizer, table_index))
    return self._range_tables[key]

  # ---- files
  def encode(self, posterior, quantized):
    """File bytes of quantized latents."""
    data = code_channels(quantized.symbols,
                         self.range_tables(quantized.quantizer,
                                           quantized.table_index))
    compressed = file_format.CompressedFile(
        method=METHOD, fingerprint=self.fingerprint, run_name=self.run_name,
        image_shape=posterior.image_shape, y_shape=quantized.symbols.shape[:2],
        z_shape=(0, 0), strings=[data],
        extra=_EXTRA.pack(QUANTIZERS[quantized.quantizer], quantized.setting,
                          quantized.table_index),
        digest=file_format.latents_digest(quantized.symbols))
    return compressed.to_bytes()

  def decode_latents(self, compressed, max_pixels=None):
    """(quantizer, setting, latent values [h, w, N]) of a parsed file."""
    quantizer, setting, index = check_header(compressed, max_pixels)
    file_format.check_fingerprint(compressed, self.fingerprint, self.run_name)
    if index >= len(self.tables.settings(quantizer)):
      raise file_format.FormatError(
          f"coding table {index} of {quantizer} is not in run {self.run_name}")
    shape = tuple(compressed.y_shape) + (self.num_channels,)
    symbols = decode_channels(compressed.strings[0],
                              self.range_tables(quantizer, index), shape)
    compressed.check_digest(symbols)
    return quantizer, setting, self.dequantize(quantizer, index, symbols)

  def decode(self, data):
    """File bytes -> (uint8 image, info dict)."""
    compressed = file_format.CompressedFile.from_bytes(data)
    quantizer, setting, values = self.decode_latents(compressed)
    image = self.reconstruct(values, compressed.image_shape)
    return image, dict(quantizer=quantizer, setting=setting, values=values)

  def compress(self, image, quantizer, setting, posterior=None, name=None):
    """Encodes one image, decodes the file as a receiver would, and measures it.

    Raises `CodingError` unless the decoded latents equal the encoded ones (so
    the decoded image equals the encoder's reconstruction). Returns (bytes,
    result dict, Quantized).
    """
    start = time.time()
    if posterior is None:
      posterior = self.analyze(image)
    quantized = self.quantize(posterior, quantizer, setting)
    data = self.encode(posterior, quantized)
    seconds = time.time() - start
    start = time.time()
    reconstruction, decoded = self.decode(data)
    decode_seconds = time.time() - start
    if not np.array_equal(decoded["values"], quantized.values):
      mismatch = np.mean(decoded["values"] != quantized.values)
      raise CodingError(f"decoded latents differ from encoded ones "
                        f"({100 * mismatch:.3f}% of entries)")
    height, width = image.shape[:2]
    pixels = height * width
    bits = channel_bits(quantized.symbols,
                        self.distributions(quantizer, quantized.table_index))
    result = dict(
        method=quantizer, run=self.run_name, image=name,
        setting_name=PARAMETER_NAMES[quantizer], setting=float(setting),
        table_setting=float(self.tables.settings(quantizer)[quantized.table_index]),
        bpp=metrics.bits_per_pixel(len(data), height, width), num_bytes=len(data),
        est_bpp=float(bits.sum() / pixels),
        psnr=metrics.psnr(image, reconstruction),
        ms_ssim=metrics.ms_ssim(image, reconstruction),
        mse=metrics.mse(image, reconstruction), seconds=seconds,
        decode_seconds=decode_seconds, height=height, width=width,
        kl_bpp=float(posterior.kl_bits().sum() / pixels))
    if quantizer == "bayesian_ac":
      result["lmbda"] = float(setting)
      points_bits = bayesian_ac.symbols_to_code_points(quantized.symbols)[1]
      result["code_point_bits_per_latent"] = float(np.mean(points_bits))
    return data, result, quantized


class CodingError(RuntimeError):
  """A file that does not decode to the latents that were encoded."""


# ---------------------------------------------------------------- fitting a run

def read_images(pattern, max_images=None, seed=0):
  """(name, uint8 image) of files matching `pattern`, a seeded subset if limited."""
  paths = sorted(glob_lib.glob(pattern))
  if not paths:
    raise image_io.ImageError(f"{pattern}: no files match")
  if max_images and len(paths) > max_images:
    keep = np.random.default_rng(seed).choice(len(paths), max_images, replace=False)
    paths = [paths[i] for i in sorted(keep)]
  return [(os.path.splitext(os.path.basename(p))[0], image_io.read_image(p))
          for p in paths]


def posteriors(model, images):
  """Lists (mus, sigmas) of float32 [h, w, N] posteriors of uint8 images."""
  mus, sigmas = [], []
  for image in images:
    mu, sigma = model.posterior(pad_image(image))
    mus.append(mu[0].numpy())
    sigmas.append(sigma[0].numpy())
  return mus, sigmas


def fit_run(model, run_path, images, config=None, print_fn=None, **fit_kwargs):
  """Fits the coding tables on `images` and writes weights + tables to `run_path`.

  `config` (the run's config dict) gets a `coding_tables` summary and is written.
  Returns the tables dict.
  """
  say = print_fn or (lambda message: None)
  say(f"computing posteriors of {len(images)} images")
  mus, sigmas = posteriors(model, images)
  arrays, info = fit_coding_tables(mus, sigmas, print_fn=print_fn, **fit_kwargs)
  info["fit_images"] = len(images)
  checkpoints.save_weights(model, run_path, arrays)
  if config is not None:
    config["coding_tables"] = info
    checkpoints.write_config(run_path, config)
  return arrays


# ---------------------------------------------------------------- baselines

def jpeg_point(image, quality, name=None):
  """JPEG (4:2:0) at `quality`: result dict like `ImageCodec.compress`."""
  start = time.time()
  data = tf.io.encode_jpeg(image, quality=int(quality), chroma_downsampling=True,
                           format="rgb").numpy()
  seconds = time.time() - start
  start = time.time()
  reconstruction = tf.io.decode_jpeg(data, channels=3).numpy()
  decode_seconds = time.time() - start
  height, width = image.shape[:2]
  return dict(method="jpeg", image=name, setting_name="quality",
              setting=float(quality), bpp=metrics.bits_per_pixel(len(data), height,
                                                                  width),
              num_bytes=len(data), psnr=metrics.psnr(image, reconstruction),
              ms_ssim=metrics.ms_ssim(image, reconstruction),
              mse=metrics.mse(image, reconstruction), seconds=seconds,
              decode_seconds=decode_seconds, height=height, width=width)


# ---------------------------------------------------------------- R-D sweeps

_AGGREGATED = ("bpp", "psnr", "ms_ssim", "est_bpp", "mse", "kl_bpp", "seconds",
               "decode_seconds")
_CSV_COLUMNS = ("bpp", "psnr", "ms_ssim", "est_bpp", "mse", "kl_bpp",
                "encode_seconds", "decode_seconds", "num_images")


def rate_distortion(codec, images, lambdas=None, uniform_steps=None,
                    kmeans_levels=None, jpeg_qualities=DEFAULT_JPEG_QUALITIES,
                    methods=ALL_METHODS, print_fn=None, image_done_fn=None):
  """Sweeps every method's setting on every image with the one model.

  Args:
    codec: an `ImageCodec`.
    images: list of (name, uint8 image).
    lambdas: Bayesian AC lambdas (any values; default: the fitted grid).
    uniform_steps, kmeans_levels: subsets of the fitted grids (default: all).
    jpeg_qualities: JPEG qualities.
    methods: subset of `ALL_METHODS`.
    print_fn: progress messages.
    image_done_fn: called with (name, list of that image's result dicts).
  Returns:
    dict with `results` (all per-image result dicts), `rows` (method -> list of
    per-setting means, see `aggregate`) and `channels` (see `channel_report`).
  """
  say = print_fn or (lambda message: None)
  unknown = set(methods) - set(ALL_METHODS)
  if unknown:
    raise ValueError(f"unknown method(s) {sorted(unknown)}; known: {ALL_METHODS}")
  settings = {
      "bayesian_ac": list(codec.tables.settings("bayesian_ac")
                          if lambdas is None else lambdas),
      "uniform": list(codec.tables.settings("uniform")
                      if uniform_steps is None else uniform_steps),
      "kmeans": list(codec.tables.settings("kmeans")
                     if kmeans_levels is None else kmeans_levels),
      "jpeg": list(jpeg_qualities),
  }
  for quantizer in ("uniform", "kmeans"):  # fail before any work is done
    if quantizer in methods:
      for setting in settings[quantizer]:
        codec.table_index(quantizer, float(setting))
  results = []
  lambdas = [float(v) for v in settings["bayesian_ac"]]
  bits = np.zeros([len(lambdas), codec.num_channels])
  point_bits = np.zeros([len(lambdas), codec.num_channels])
  kl = np.zeros([codec.num_channels])
  latents = 0
  for name, image in images:
    posterior = codec.analyze(image)
    image_results = []
    for method in methods:
      for setting in settings[method]:
        if method == "jpeg":
          result = jpeg_point(image, setting, name)
        else:
          _, result, quantized = codec.compress(image, method, float(setting),
                                                posterior=posterior, name=name)
          if method == "bayesian_ac":
            i = lambdas.index(float(setting))
            bits[i] += channel_bits(quantized.symbols, codec.distributions(
                method, quantized.table_index))
            point_bits[i] += _channel_major(bayesian_ac.symbols_to_code_points(
                quantized.symbols)[1]).sum(axis=1)
        image_results.append(result)
    positions = posterior.mu.shape[0] * posterior.mu.shape[1]
    kl += posterior.kl_bits().reshape(positions, -1).sum(axis=0)
    latents += positions
    results.extend(image_results)
    say(f"{name}: " + "  ".join(
        f"{m} {min(r['bpp'] for r in image_results if r['method'] == m):.3f}.."
        f"{max(r['bpp'] for r in image_results if r['method'] == m):.3f} bpp"
        for m in methods))
    if image_done_fn:
      image_done_fn(name, image_results)
  channels = None
  if "bayesian_ac" in methods and latents:
    channels = channel_report(lambdas, bits / latents, kl / latents, latents,
                              len(images), point_bits / latents)
  return dict(results=results, rows=aggregate(results), channels=channels)


def channel_report(lambdas, bits_per_latent, kl_bits_per_latent, latents,
                   num_images, code_point_bits_per_latent=None):
  """JSON-able per-channel rate (bits/latent, per lambda) against mean KL (bits).

  `bits_per_latent` and `code_point_bits_per_latent` are float [len(lambdas), N];
  the second (the paper's rate R(xi)) may be left out.
  """
  if code_point_bits_per_latent is None:
    code_point_bits_per_latent = np.full_like(bits_per_latent, np.nan)
  order = np.argsort(-kl_bits_per_latent, kind="stable")
  return dict(
      lambdas=list(lambdas), num_images=int(num_images),
      latents_per_channel=int(latents),
      collapsed_kl_bits=COLLAPSED_KL_BITS,
      collapsed_channels=[int(c) for c in np.nonzero(
          kl_bits_per_latent < COLLAPSED_KL_BITS)[0]],
      channels=[dict(channel=int(c), kl_bits_per_latent=float(kl_bits_per_latent[c]),
                     bits_per_latent=[float(b) for b in bits_per_latent[:, c]],
                     code_point_bits_per_latent=[
                         float(b) for b in code_point_bits_per_latent[:, c]],
                     collapsed=bool(kl_bits_per_latent[c] < COLLAPSED_KL_BITS))
                for c in order],
      note="bits_per_latent: ideal code length under the per-channel symbol "
           "table, one entry per lambda; code_point_bits_per_latent: mean R(xi), "
           "the significant bits of the chosen code points (never larger at a "
           "larger lambda); kl_bits_per_latent: mean "
           "KL(q(y|x) || N(0, 1)) in bits over the evaluated latents. Channels "
           "are sorted by decreasing KL.")


def aggregate(results):
  """Method -> rows (sorted by setting) of means over images of `_AGGREGATED`."""
  groups = {}
  for result in results:
    groups.setdefault((result["method"], float(result["setting"])), []).append(result)
  rows = {}
  for (method, setting), group in sorted(groups.items()):
    row = {PARAMETER_NAMES[method]: setting, "num_images": len(group)}
    for key in _AGGREGATED:
      values = [r[key] for r in group if r.get(key) is not None]
      values = [v for v in values if math.isfinite(v)]
      column = "encode_seconds" if key == "seconds" else key
      row[column] = float(np.mean(values)) if values else None
    rows.setdefault(method, []).append(row)
  return rows


def write_csvs(results_dir, rows):
  """Writes METHOD.csv per method: its setting column, then `_CSV_COLUMNS`."""
  os.makedirs(results_dir, exist_ok=True)
  paths = {}
  for method, method_rows in rows.items():
    path = os.path.join(results_dir, f"{method}.csv")
    columns = (PARAMETER_NAMES[method],) + _CSV_COLUMNS
    with open(path, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(columns)
      for row in method_rows:
        writer.writerow(["" if row.get(k) is None else repr(float(row[k]))
                         if k != "num_images" else row[k] for k in columns])
    paths[method] = path
  return paths


def format_rows(rows):
  """Human-readable table lines of `aggregate` rows."""
  lines = []
  for method, method_rows in rows.items():
    for row in method_rows:
      setting = row[PARAMETER_NAMES[method]]
      est = "" if row.get("est_bpp") is None else f"  est {row['est_bpp']:.4f}"
      lines.append(f"{method:12s} {PARAMETER_NAMES[method]} {setting:<8g} "
                   f"bpp {row['bpp']:.4f}{est}  psnr {row['psnr']:.2f} dB  "
                   f"ms-ssim {row['ms_ssim']:.4f}")
  return lines


def write_rate_distortion(results_dir, sweep, extra=None):
  """Writes the CSVs and `channels.json` (plus `extra` keys) of a sweep."""
  paths = write_csvs(results_dir, sweep["rows"])
  if sweep.get("channels") is not None:
    report = dict(sweep["channels"], **(extra or {}))
    path = os.path.join(results_dir, "channels.json")
    checkpoints.write_json_atomic(path, report)
    paths["channels"] = path
  return paths

