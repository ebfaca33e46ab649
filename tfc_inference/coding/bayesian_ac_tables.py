"""Coding tables of the Bayesian AC codec, fitted once per run on training images.

`fit_coding_tables` fits them; they are stored in `weights.npz` under `tables/`
(see `CodingTables`):

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
  * Centroids (optional; runs fitted before 2026-12-07 have none): per lambda,
    channel and symbol of the Bayesian AC table, the mean of the training
    posterior means mu that Bayesian AC codes to that symbol. The
    "bayesian_ac_centroids" quantizer writes the same symbols as "bayesian_ac"
    but its decoder reconstructs each latent at its symbol's centroid instead of
    at the code point F^-1(xi), the paper's reconstruction (escaped symbols keep
    F^-1(xi)). This is our extension, not the paper's: Eq. 9 pulls each latent
    towards the prior's short code points, and across many channels at once those
    pulls add up in the synthesis (see benchmarks/bac_error_structure.py); the
    centroid undoes the pull on average at no cost in rate.

Units: bits per latent.
"""

import dataclasses
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.coding import bayesian_ac
from tfc_inference.coding import file_format
from tfc_inference.coding import scalar_quantizers
from tfc_inference.models import checkpoints
from tfc_inference.models import factorized

QUANTIZERS = {"bayesian_ac": 0, "uniform": 1, "kmeans": 2,
              "bayesian_ac_centroids": 3}
QUANTIZER_NAMES = {v: k for k, v in QUANTIZERS.items()}
# Quantizers that code the symbols (and use the symbol tables) of another.
SYMBOLS_OF = {"bayesian_ac_centroids": "bayesian_ac"}


# The shipped run's grid, the same as the evaluation runner's sweep: rates from
# about 0.1 to 1.7 bpp on Kodak (lambda >= 10 gives the low-rate end, where most
# latents take the 1-bit code point).
DEFAULT_LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1., 3., 10., 30., 100.)
DEFAULT_UNIFORM_STEPS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.)
DEFAULT_KMEANS_LEVELS = (2, 3, 4, 6, 8, 12, 16, 24, 32)


MAX_BITS = 24  # most bits of a Bayesian AC code point (and of any symbol)
ALPHABET_LIMIT = 1024  # most symbols per channel table; others are escaped
MIN_COUNT = 2  # symbols seen fewer times in training are escaped
NUM_KNOTS = 2049
LOGIT_MAX = 20.  # 2^-24 has logit -16.6: 24-bit code points lie inside the table


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
  prior = factorized.DeepFactorized(batch_shape=[channels])
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
  # float64 products never reach oneDNN, so tfc's own class is safe here.
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


def channel_major(symbols):
  symbols = np.asarray(symbols, np.int64)
  return symbols.reshape(-1, symbols.shape[-1]).T


def code_channels(symbols, tables):
  """Entropy codes symbols [..., N] into bytes; `tables`: a
  `bayesian_ac.RangeCodingTables` with one distribution per channel."""
  columns = channel_major(symbols)
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
                   for column, d in zip(channel_major(symbols), distributions)])


def fit_centroids(symbols, mu, distributions):
  """Per channel, the mean of `mu` [S, N] over the rows whose symbol [S, N] is
  each symbol of that channel's distribution (float64, aligned with its
  `symbols`; NaN for a symbol no row has)."""
  centroids = []
  for c, distribution in enumerate(distributions):
    order = np.argsort(symbols[:, c], kind="stable")
    column, means = symbols[order, c], mu[order, c]
    starts = np.searchsorted(column, distribution.symbols, side="left")
    ends = np.searchsorted(column, distribution.symbols, side="right")
    sums = np.concatenate([[0.], np.cumsum(means)])
    counts = ends - starts
    centroids.append(np.where(counts > 0, (sums[ends] - sums[starts]) /
                              np.maximum(counts, 1), np.nan))
  return centroids


class CentroidLookup:
  """Reconstruction values of Bayesian AC symbols at one lambda: each channel's
  centroid where its table has one, else the code point's value."""

  def __init__(self, distributions, centroids):
    self._tables = []
    for distribution, centroid in zip(distributions, centroids):
      known = np.isfinite(centroid)
      order = np.argsort(distribution.symbols[known])
      self._tables.append((distribution.symbols[known][order],
                           centroid[known][order]))

  def values(self, symbols, code_point_values):
    """float64 [..., N] of symbols [..., N] (the code points' values where a
    symbol has no centroid)."""
    values = np.array(code_point_values, np.float64)
    for c, (known, centroid) in enumerate(self._tables):
      if not len(known):
        continue
      column = symbols[..., c]
      index = np.minimum(np.searchsorted(known, column), len(known) - 1)
      values[..., c] = np.where(known[index] == column, centroid[index],
                                values[..., c])
    return values


@dataclasses.dataclass
class CodingTables:
  """Everything besides the VAE weights that encoder and decoder share."""
  prior: TabulatedPrior
  symbol_tables: Dict[str, SymbolTables]  # quantizer -> tables
  kmeans_centers: np.ndarray  # [G, N, max levels], NaN-padded
  max_bits: int = MAX_BITS
  # [G][N] Bayesian AC centroids (`fit_centroids`), or None if not fitted.
  centroids: Optional[List[List[np.ndarray]]] = None

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
    symbol_tables = {q: SymbolTables.from_arrays(arrays, q, channels)
                     for q in QUANTIZERS if q not in SYMBOLS_OF}
    centroids = None
    if "bayesian_ac/centroids" in arrays:
      counts = arrays["bayesian_ac/symbol_counts"]
      values = np.asarray(arrays["bayesian_ac/centroids"], np.float64)
      if values.shape != (int(np.sum(counts)),):
        raise checkpoints.CheckpointError(
            "Bayesian AC centroids do not match the symbol tables")
      flat = np.split(values, np.cumsum(counts)[:-1])
      centroids = [flat[g * channels:(g + 1) * channels]
                   for g in range(len(arrays["bayesian_ac/settings"]))]
    return cls(prior=prior, symbol_tables=symbol_tables,
               kmeans_centers=arrays["kmeans/centers"],
               max_bits=int(arrays["bayesian_ac/code_point_max_bits"]),
               centroids=centroids)

  def tables_of(self, quantizer):
    """The `SymbolTables` that `quantizer` codes its symbols with."""
    return self.symbol_tables[SYMBOLS_OF.get(quantizer, quantizer)]

  def settings(self, quantizer):
    return self.tables_of(quantizer).settings


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


def add_centroids(arrays, mus, sigmas, max_rows=32768, seed=0):
  """A copy of a run's table `arrays` with Bayesian AC centroids fitted on the
  posteriors `mus`, `sigmas` (as `fit_coding_tables` takes them) under the
  run's own prior and symbol tables, every other table unchanged: the
  centroids `fit_coding_tables` with the same rows, prior and tables gives."""
  channels = np.asarray(arrays["prior/knots"]).shape[0]
  tables = CodingTables.from_arrays(arrays, channels)
  mu, sigma = _subsample_rows(mus, sigmas, max_rows, np.random.default_rng(seed))
  distributions = tables.symbol_tables["bayesian_ac"].distributions
  centroids = []
  for lmbda, rows in zip(tables.settings("bayesian_ac"), distributions):
    symbols = bayesian_ac_symbols(tables.prior, mu, sigma, float(lmbda),
                                  tables.max_bits).symbols
    centroids.extend(fit_centroids(symbols, mu, rows))
  return dict(arrays, **{"bayesian_ac/centroids": np.concatenate(centroids)})


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
  rows, centroids = [], []
  for lmbda in lambdas:
    symbols = bayesian_ac_symbols(prior, mu, sigma, lmbda, max_bits).symbols
    rows.append(fit(symbols))
    centroids.extend(fit_centroids(symbols, mu, rows[-1]))
  tables["bayesian_ac"] = SymbolTables(np.array(lambdas, np.float64), rows)
  arrays["bayesian_ac/centroids"] = np.concatenate(centroids)
  tables["uniform"] = SymbolTables(
      np.array(uniform_steps, np.float64),
      [fit(scalar_quantizers.uniform_quantize(mu, step)[0]) for step in uniform_steps])
  centers = np.full([len(kmeans_levels), channels, max(kmeans_levels)], np.nan)
  rows = []
  for g, levels in enumerate(kmeans_levels):
    for c in range(channels):
      centers[g, c, :levels] = scalar_quantizers.kmeans_1d(mu[:, c], levels)
    rows.append(fit(scalar_quantizers.kmeans_quantize(mu, centers[g])[0]))
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
