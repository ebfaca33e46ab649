"""Bayesian Arithmetic Coding (Yang, Bamler & Mandt, ICML 2020), for any mean-field
Gaussian posterior.

Each latent dimension i has a posterior N(mu_i, sigma_i^2) and a continuous prior with
CDF F_i and quantile function F_i^-1. Bayesian AC transmits a *code point*, a dyadic
number xi = k / 2^R in (0, 1) with k odd (R significant bits after the binary point,
trailing zeros trimmed), and the decoder reconstructs F_i^-1(xi). Per dimension the
encoder minimizes (paper, Eq. 9)

    l(xi) = (F^-1(xi) - mu)^2 + 2 * lmbda * sigma^2 * R(xi),

i.e. sigma^2 times the rate-penalized negative posterior log-density
-log N(F^-1(xi); mu, sigma^2) + lmbda * R(xi), up to a constant: uncertain dimensions
(large sigma) are coded coarsely, certain ones finely, from a single trained model.

Representations of a code point (all arrays have the latents' shape [...]):
  * `(numerator k, bits R)`: int64 k odd, 0 < k < 2^R; int32 R >= 1.
  * symbol: the heap index `2^(R-1) + (k-1)/2` of xi in the binary tree of dyadic
    numbers (root 1/2 -> 1; 1/4, 3/4 -> 2, 3; 1/8 .. 7/8 -> 4 .. 7; ...). In binary it
    is a leading 1 followed by the R-1 free bits of k (its last bit is always 1), so
    the map is a bijection onto the positive integers and all code points with at most
    B bits are exactly the symbols 1 .. 2^B - 1.
  * value: the reconstruction F^-1(xi), float64.

Entropy coding (`fit_symbol_distribution`, `entropy_code`, `entropy_decode`): symbols
seen while fitting get a categorical model; all others are sent as an ESCAPE symbol
followed by R (a fitted categorical) and the R - 1 free bits of k (uniform), so any
code point with at most `max_bits` bits can be coded. Coding uses tfc's range coder
(`create_range_encoder` / `entropy_encode_index`, 16-bit probabilities), as the
paper codes code points with arithmetic coding. The paper's rate R(xi) leaves out the cost of telling the decoder where a code
point ends, so real code lengths exceed sum R(xi).
"""

import dataclasses
from typing import Callable, Iterable, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

# An elementwise function on float64 arrays (a CDF or a quantile function). It may
# return a numpy array or a tensor; it receives arrays with the latents' shape, or with
# extra leading axes (brute-force search), so per-dimension priors must broadcast.
ElementwiseFn = Callable[[np.ndarray], object]

# float64 represents k / 2^R exactly only up to 52 bits after the binary point.
_MAX_SUPPORTED_BITS = 52
# Widest uniform chunk of free bits coded at once: one range-coder table per width
# 1 .. 12, each well inside the coder's 16-bit probability resolution.
_CHUNK_BITS = 12
# Probability precision of tfc's range coder (its maximum).
_PRECISION = 16


@dataclasses.dataclass
class CodePoints:
  """Code points xi = numerators / 2^bits, one per latent; all arrays of shape [...].

  Attributes:
    numerators: int64, odd numerator k of xi = k / 2^R.
    bits: int32, R >= 1, the number of bits of xi (its rate in the paper's sense).
    values: float64, the reconstruction F^-1(xi) in the latents' units.
    symbols: int64, the heap index 2^(R-1) + (k-1)/2 >= 1, for entropy coding.
  """
  numerators: np.ndarray
  bits: np.ndarray
  values: np.ndarray
  symbols: np.ndarray


# -- priors

def standard_normal_prior() -> Tuple[ElementwiseFn, ElementwiseFn]:
  """(quantile_fn, cdf_fn) of N(0, 1), float64 via tf.math.ndtri / tf.math.erfc."""
  def quantile_fn(xi):
    return tf.math.ndtri(tf.constant(xi, tf.float64)).numpy()

  def cdf_fn(x):
    # Phi(x) = erfc(-x / sqrt(2)) / 2 keeps its relative accuracy in the left tail.
    return .5 * tf.math.erfc(-tf.constant(x, tf.float64) / np.sqrt(2.)).numpy()

  return quantile_fn, cdf_fn


def prior_from_distribution(distribution) -> Tuple[ElementwiseFn, ElementwiseFn]:
  """(quantile_fn, cdf_fn) of a tfp distribution with `quantile` and `cdf`.

  Its batch shape must broadcast against the latents' shape. Use float64 parameters:
  float32 cannot resolve code points finer than about 2^-24.
  """
  def quantile_fn(xi):
    return distribution.quantile(tf.cast(xi, distribution.dtype)).numpy()

  def cdf_fn(x):
    return distribution.cdf(tf.cast(x, distribution.dtype)).numpy()

  return quantile_fn, cdf_fn


def _evaluate(fn: ElementwiseFn, x: np.ndarray) -> np.ndarray:
  # A writable copy: broadcast_to alone returns a read-only view.
  return np.array(np.broadcast_to(np.asarray(fn(x), np.float64), np.shape(x)))


# -- representations

def code_points_to_symbols(numerators: ArrayLike, bits: ArrayLike) -> np.ndarray:
  """Heap indices 2^(R-1) + (k-1)/2, int64 [...]; numerators must be odd."""
  numerators = np.asarray(numerators, np.int64)
  bits = np.asarray(bits, np.int64)
  if np.any(numerators % 2 != 1) or np.any(numerators < 1) or np.any(bits < 1):
    raise ValueError("code points need odd numerators and at least one bit")
  if np.any(numerators >= np.left_shift(1, bits)):
    raise ValueError("code points must lie in (0, 1)")
  return np.left_shift(1, bits - 1) + (numerators - 1) // 2


def symbols_to_code_points(symbols: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
  """Inverse of `code_points_to_symbols`: (numerators int64, bits int32), [...]."""
  symbols = np.asarray(symbols, np.int64)
  if np.any(symbols < 1) or np.any(symbols >= 2 ** _MAX_SUPPORTED_BITS):
    raise ValueError(f"symbols must lie in [1, 2^{_MAX_SUPPORTED_BITS})")
  # frexp's exponent is the bit length; exact since symbols < 2^53 convert exactly.
  bits = np.frexp(symbols.astype(np.float64))[1].astype(np.int64)
  numerators = 2 * (symbols - np.left_shift(1, bits - 1)) + 1
  return numerators, bits.astype(np.int32)


def code_point_positions(numerators: ArrayLike, bits: ArrayLike) -> np.ndarray:
  """xi = k / 2^R in (0, 1), float64 [...] (exact for R <= 52)."""
  return np.ldexp(np.asarray(numerators, np.float64), -np.asarray(bits, np.int32))


def _make_code_points(numerators, bits, quantile_fn) -> CodePoints:
  numerators = np.asarray(numerators, np.int64)
  bits = np.asarray(bits, np.int32)
  return CodePoints(
      numerators=numerators, bits=bits,
      values=_evaluate(quantile_fn, code_point_positions(numerators, bits)),
      symbols=code_points_to_symbols(numerators, bits))


def _trim(grid_numerators, grid_bits):
  """(k, R) of n / 2^r with trailing zero bits dropped, so k is odd; n >= 1."""
  grid_numerators = np.asarray(grid_numerators, np.int64)
  # n & -n isolates the lowest set bit; its exponent counts the trailing zeros.
  zeros = np.frexp((grid_numerators & -grid_numerators).astype(np.float64))[1] - 1
  return grid_numerators >> zeros, np.asarray(grid_bits, np.int64) - zeros


def _check_max_bits(max_bits):
  if not 1 <= max_bits <= _MAX_SUPPORTED_BITS:
    raise ValueError(f"max_bits must lie in [1, {_MAX_SUPPORTED_BITS}]")


# -- the objective

def code_point_loss(values: ArrayLike, bits: ArrayLike, mu: ArrayLike,
                    sigma: ArrayLike, lmbda: ArrayLike) -> np.ndarray:
  """Eq. 9: (value - mu)^2 + 2 lmbda sigma^2 R, float64 [...] (latent units^2)."""
  values = np.asarray(values, np.float64)
  sigma = np.asarray(sigma, np.float64)
  return ((values - np.asarray(mu, np.float64)) ** 2
          + 2. * np.asarray(lmbda, np.float64) * sigma ** 2 * np.asarray(bits))


# -- encoding

def encode(mu: ArrayLike, sigma: ArrayLike, quantile_fn: ElementwiseFn,
           cdf_fn: ElementwiseFn, lmbda: ArrayLike, max_bits: int = 24) -> CodePoints:
  """Algorithm 1: the loss-minimizing code point of each latent, vectorized.

  Round r looks at the two r-bit grid points k / 2^r around F(mu): floor and ceil of
  F(mu) 2^r (0 and 1 excluded). This finds the optimum among all code points with at
  most `max_bits` bits: if the optimum xi* has R* bits and lies left of F(mu) (the
  right side is symmetric), the floor of round R* lies between xi* and F(mu), so F^-1
  makes it no farther from mu, and it has at most R* bits.

  Stopping rule. A candidate of round r' > r that has not been seen already has
  exactly r' >= r + 1 bits (one with fewer bits, R', is also the floor or ceil of
  round R'), so it costs at least 2 lmbda sigma^2 (r + 1) with zero distortion. Once
  l(xi_best) <= 2 lmbda sigma^2 (r + 1) no later round can improve, and the latent
  stops (rounds go on until all latents have stopped, or max_bits). Dividing by
  2 sigma^2, this is the paper's criterion

      log g(xi_dagger) - log g(xi_best) <= lmbda (r + 1 - R(xi_best)),

  with g(xi) = N(F^-1(xi); mu, sigma^2) and xi_dagger = F(mu), where g peaks: the
  left side, (mu - F^-1(xi_best))^2 / (2 sigma^2), is the distortion that the best
  point loses against a (hypothetical) point at the mode, and a point of r + 1 or
  more bits can at best win back all of it. The two forms are equivalent, so the rule
  never stops before the optimum; ties keep the earlier, i.e. shorter, code point.

  Args:
    mu: posterior means, float [...], in the latents' units.
    sigma: posterior standard deviations, float >= 0, broadcastable to mu.
    quantile_fn: prior quantile function F^-1, elementwise on float64 arrays [...].
    cdf_fn: prior CDF F, elementwise on float64 arrays [...].
    lmbda: rate penalty >= 0 per bit (the paper's lambda), broadcastable to mu.
    max_bits: most bits of a code point, 1 .. 52.

  Returns:
    `CodePoints` with arrays of mu's shape.
  """
  _check_max_bits(max_bits)
  mu = np.asarray(mu, np.float64)
  sigma, lmbda = (np.broadcast_to(np.asarray(a, np.float64), mu.shape)
                  for a in (sigma, lmbda))
  position = _evaluate(cdf_fn, mu)  # F(mu) in [0, 1]
  rate_weight = 2. * lmbda * sigma ** 2  # loss per bit

  best_loss = np.full(mu.shape, np.inf)
  best_numerator = np.ones(mu.shape, np.int64)
  best_bits = np.ones(mu.shape, np.int64)
  searching = np.ones(mu.shape, bool)
  for r in range(1, max_bits + 1):
    scale = 2. ** r
    # Clipping keeps the nearest valid point on each side even when F(mu) saturates
    # at 0 or 1 in float64; a side without a valid point (0 or 1) is skipped.
    left = np.minimum(np.floor(position * scale), scale - 1.)
    right = np.maximum(np.ceil(position * scale), 1.)
    for grid_numerator in (left, right):
      valid = searching & (grid_numerator >= 1.) & (grid_numerator <= scale - 1.)
      numerator, bits = _trim(np.where(valid, grid_numerator, 1.).astype(np.int64), r)
      value = _evaluate(quantile_fn, code_point_positions(numerator, bits))
      loss = code_point_loss(value, bits, mu, sigma, lmbda)
      better = valid & (loss < best_loss)
      best_loss = np.where(better, loss, best_loss)
      best_numerator = np.where(better, numerator, best_numerator)
      best_bits = np.where(better, bits, best_bits)
    searching &= best_loss > rate_weight * (r + 1)
    if not np.any(searching):
      break
  return _make_code_points(best_numerator, best_bits, quantile_fn)


def brute_force_encode(mu: ArrayLike, sigma: ArrayLike, quantile_fn: ElementwiseFn,
                       lmbda: ArrayLike, max_bits: int) -> CodePoints:
  """Exhaustive search over all 2^max_bits - 1 code points; a test oracle.

  Candidates are visited in symbol order (fewer bits first), and ties keep the first,
  as in `encode`. Memory is O(2^max_bits * mu.size): keep max_bits small (<= ~12).

  Args: as for `encode` (no CDF needed).
  Returns: `CodePoints` with arrays of mu's shape.
  """
  _check_max_bits(max_bits)
  mu = np.asarray(mu, np.float64)
  candidates = np.arange(1, 2 ** max_bits, dtype=np.int64)
  numerators, bits = symbols_to_code_points(candidates)
  expand = (slice(None),) + (np.newaxis,) * mu.ndim
  positions = np.broadcast_to(
      code_point_positions(numerators, bits)[expand], candidates.shape + mu.shape)
  losses = code_point_loss(_evaluate(quantile_fn, positions), bits[expand],
                           mu, sigma, lmbda)
  best = np.argmin(losses, axis=0)
  return _make_code_points(numerators[best], bits[best], quantile_fn)


def decode(symbols: ArrayLike, quantile_fn: ElementwiseFn) -> np.ndarray:
  """Reconstructions F^-1(xi) of symbols, float64 [...] (latent units)."""
  numerators, bits = symbols_to_code_points(symbols)
  return _evaluate(quantile_fn, code_point_positions(numerators, bits))


# -- entropy coding

@dataclasses.dataclass
class SymbolDistribution:
  """A categorical over known symbols plus an ESCAPE for all other code points.

  Attributes:
    symbols: int64 [n], sorted known symbols.
    probabilities: float64 [n + 1], of the known symbols, then of ESCAPE; sums to 1.
    bits_probabilities: float64 [max_bits + 1], of the bits R = 0 .. max_bits of an
      escaped code point (R = 0 never occurs); its R - 1 free numerator bits follow,
      uniformly.
    max_bits: most bits of any code point.
  """
  symbols: np.ndarray
  probabilities: np.ndarray
  bits_probabilities: np.ndarray
  max_bits: int

  @property
  def escape_index(self) -> int:
    return len(self.symbols)


def fit_symbol_distribution(symbols_list: Iterable[ArrayLike], alphabet_limit: int,
                            max_bits: int = 24, escape_count: float = 1.,
                            min_count: int = 1) -> SymbolDistribution:
  """Empirical code-point distribution with an escape for unseen symbols.

  The bits R of escaped symbols follow the histogram of R over the rare training
  symbols (seen once, or not kept in the table), as those resemble unseen ones
  (Good-Turing's idea), plus a pseudo-count of one for every R in 1 .. max_bits.

  Args:
    symbols_list: arrays of training symbols (any shapes).
    alphabet_limit: most symbols modelled explicitly; the most frequent are kept and
      the rest fall back to ESCAPE (and their counts go to it).
    max_bits: most bits of any code point that will be coded (1 .. 52).
    escape_count: pseudo-count of ESCAPE (> 0) so unseen symbols stay codable.
    min_count: symbols seen fewer times also fall back to ESCAPE: with little training
      data, a rare symbol's empirical probability costs more bits than escaping it.

  Returns:
    A `SymbolDistribution`.
  """
  _check_max_bits(max_bits)
  if escape_count <= 0:
    raise ValueError("escape_count must be positive")
  flat = [np.asarray(s, np.int64).ravel() for s in symbols_list]
  symbols, counts = np.unique(np.concatenate(flat + [np.zeros([0], np.int64)]),
                              return_counts=True)
  if symbols.size and (symbols[0] < 1 or symbols[-1] >= 2 ** max_bits):
    raise ValueError(f"training symbols exceed {max_bits} bits")
  # Stable sort keeps ties in symbol order, so fitting is deterministic.
  keep = np.argsort(-counts, kind="stable")[:max(alphabet_limit, 0)]
  keep = np.sort(keep[counts[keep] >= min_count])
  escape = escape_count + counts.sum() - counts[keep].sum()
  weights = np.append(counts[keep].astype(np.float64), escape)
  rare = np.ones(symbols.shape, bool)
  rare[keep] = counts[keep] <= 1
  _, rare_bits = symbols_to_code_points(symbols[rare])
  bits_weights = np.bincount(rare_bits, weights=counts[rare].astype(np.float64),
                             minlength=max_bits + 1).astype(np.float64)
  bits_weights[1:] += 1.
  return SymbolDistribution(
      symbols=symbols[keep], probabilities=weights / weights.sum(),
      bits_probabilities=bits_weights / bits_weights.sum(), max_bits=max_bits)


def _categorical_indices(symbols, distribution):
  """Index of each symbol in the known-symbol table, or the escape index."""
  index = np.searchsorted(distribution.symbols, symbols)
  # The table padded with 0 (never a symbol) so the escape index can be looked up.
  known = _padded_table(distribution)[index] == symbols
  return np.where(known, index, distribution.escape_index)


def _padded_table(distribution):
  return np.append(distribution.symbols, np.int64(0))


def _free_bit_chunks(bits, max_bits):
  """For each 12-bit chunk c of the R - 1 free bits: (who, width), widths >= 1."""
  free = np.asarray(bits, np.int64) - 1
  for c in range(-(-(max_bits - 1) // _CHUNK_BITS)):
    start = c * _CHUNK_BITS
    who = np.nonzero(free > start)[0]
    yield start, who, np.minimum(_CHUNK_BITS, free[who] - start)


def _quantized_cdf(probabilities):
  """One range-coder table: [-precision, cdf...], with an unused overflow slot.

  tfc's tables reserve their last symbol for out-of-range values; every value we
  code is in range (escapes are handled above the coder), so it gets ~0 mass.
  """
  pmf = np.append(np.asarray(probabilities, np.float32), np.float32(0))
  cdf = gen_ops.pmf_to_quantized_cdf(tf.constant(pmf), precision=_PRECISION)
  return np.concatenate([[-_PRECISION], cdf.numpy()]).astype(np.int32)


class RangeCodingTables:
  """tfc range-coder lookup for a list of `SymbolDistribution`s (one per stream).

  Table layout: the uniform tables for free-bit chunks of width 1 .. 12 first, then
  per distribution its categorical table (if it has one) and its bits-R table.
  """

  def __init__(self, distributions: Sequence["SymbolDistribution"]):
    tables = [_quantized_cdf(np.full([1 << w], 1. / (1 << w)))
              for w in range(1, _CHUNK_BITS + 1)]
    self.categorical_table, self.bits_table = [], []
    for d in distributions:
      self.categorical_table.append(len(tables) if _has_categorical_stage(d)
                                    else None)
      if _has_categorical_stage(d):
        tables.append(_quantized_cdf(d.probabilities))
      self.bits_table.append(len(tables))
      tables.append(_quantized_cdf(d.bits_probabilities))
    self.distributions = list(distributions)
    self.lookup = tf.constant(np.concatenate(tables), tf.int32)


def _uniform_table(width):
  return np.asarray(width, np.int32) - 1


def _encode(handle, table, values):
  if not np.size(values):
    return handle
  table = np.broadcast_to(np.asarray(table, np.int32), np.shape(values))
  return gen_ops.entropy_encode_index(handle, tf.constant(table),
                                      tf.constant(values, tf.int32))


def _decode(handle, table, count):
  if not count:
    return handle, np.zeros([0], np.int64)
  table = np.broadcast_to(np.asarray(table, np.int32), [count])
  handle, values = gen_ops.entropy_decode_index(
      handle, tf.constant(table), [count], tf.int32)
  return handle, values.numpy().astype(np.int64)


def encode_streams(streams: Sequence[np.ndarray],
                   tables: RangeCodingTables) -> bytes:
  """Range codes int64 symbol arrays [n_s], stream s with `tables.distributions[s]`.

  Per stream, in order: the categorical index of every symbol, then the bits R of
  the escaped ones, then chunk by chunk their free numerator bits (the range coder
  is a queue: the decoder reads in the same order).
  """
  handle = gen_ops.create_range_encoder([], tables.lookup)
  for s, (symbols, d) in enumerate(zip(streams, tables.distributions)):
    symbols = np.asarray(symbols, np.int64).ravel()
    if symbols.size and (symbols.min() < 1 or symbols.max() >= 2 ** d.max_bits):
      raise ValueError(f"symbols exceed the distribution's {d.max_bits} bits")
    index = _categorical_indices(symbols, d)
    if tables.categorical_table[s] is not None:
      handle = _encode(handle, tables.categorical_table[s], index)
    escaped = symbols[index == d.escape_index]
    _, bits = symbols_to_code_points(escaped)
    handle = _encode(handle, tables.bits_table[s], bits)
    for start, who, width in _free_bit_chunks(bits, d.max_bits):
      chunk = (escaped[who] >> start) & ((1 << width) - 1)
      handle = _encode(handle, _uniform_table(width), chunk)
  return gen_ops.entropy_encode_finalize(handle).numpy()


def decode_streams(data: bytes, tables: RangeCodingTables,
                   counts: Sequence[int]) -> list:
  """Inverse of `encode_streams`: int64 arrays [counts[s]].

  Raises ValueError if the range decoder reports that `data` does not match.
  """
  handle = gen_ops.create_range_decoder(tf.constant(data), tables.lookup)
  streams = []
  for s, (count, d) in enumerate(zip(counts, tables.distributions)):
    index = np.full([count], d.escape_index, np.int64)
    if tables.categorical_table[s] is not None:
      handle, index = _decode(handle, tables.categorical_table[s], count)
    escape = index == d.escape_index
    symbols = _padded_table(d)[np.minimum(index, d.escape_index)]
    handle, bits = _decode(handle, tables.bits_table[s], int(escape.sum()))
    if np.any((bits < 1) | (bits > d.max_bits)):
      raise ValueError("range-coded data is corrupt (impossible code-point length)")
    escaped = np.left_shift(1, np.maximum(bits, 1) - 1)  # each symbol's leading 1
    for start, who, width in _free_bit_chunks(bits, d.max_bits):
      handle, chunk = _decode(handle, _uniform_table(width), who.size)
      escaped[who] |= chunk << start
    symbols[escape] = escaped
    streams.append(symbols)
  if not gen_ops.entropy_decode_finalize(handle).numpy():
    raise ValueError("range-coded data is corrupt or was coded with other tables")
  return streams


def entropy_code(symbols: ArrayLike, distribution: SymbolDistribution) -> bytes:
  """Codes symbols (any shape, flattened in C order) into bytes."""
  return encode_streams([np.asarray(symbols, np.int64).ravel()],
                        RangeCodingTables([distribution]))


def entropy_decode(data: bytes, distribution: SymbolDistribution,
                   shape: Sequence[int]) -> np.ndarray:
  """Inverse of `entropy_code`: int64 symbols of the given `shape`."""
  (symbols,) = decode_streams(data, RangeCodingTables([distribution]),
                              [int(np.prod(shape))])
  return symbols.reshape(shape)


def _has_categorical_stage(distribution):
  # Without known symbols everything escapes with probability 1: nothing to code.
  return distribution.escape_index > 0


def information_content_bits(symbols: ArrayLike,
                             distribution: SymbolDistribution) -> float:
  """Ideal code length of `symbols` under `distribution` (bits, float): what
  `entropy_code` achieves up to the 16-bit quantization of the probabilities and
  the range coder's termination."""
  symbols = np.asarray(symbols, np.int64).ravel()
  index = _categorical_indices(symbols, distribution)
  total = -np.sum(np.log2(distribution.probabilities[index]))
  _, bits = symbols_to_code_points(symbols[index == distribution.escape_index])
  total -= np.sum(np.log2(distribution.bits_probabilities[bits]))
  return float(total + np.sum(bits - 1))
