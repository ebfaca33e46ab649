"""Functions whose float64 results are the same bits on every IEEE-754 machine.

Relative entropy coding transmits only the index of a candidate drawn from the
coding distribution, so the decoder must regenerate exactly the encoder's
candidates. Library samplers may change their streams between versions, and
vectorized transcendental functions (`np.log`, `np.exp`, `np.cos`) may differ in
the last bit between CPUs, which dispatch to different SIMD kernels. So
candidates come from a counter-based hash of integers (SplitMix64's finalizer:
uint64 arithmetic only) and the Box-Muller transform, with the logarithm, the
power of two and the cosine written here as fixed polynomials, evaluated in a
fixed order with operations IEEE-754 rounds correctly (+, -, *, /, sqrt) and
the exact `frexp` (or the same split read from the bits), `ldexp` and
`floor`.

They agree with the true functions to about 1e-15 relative; what matters is that
the same inputs give the same bits everywhere.
"""

import math

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_HASH_INIT = np.uint64(0x6A09E667F3BCC909)
_LN2 = 0.6931471805599453
_HALF_PI = 1.5707963267948966
_SQRT_HALF = 0.7071067811865476
# Taylor coefficients, highest order first (Horner); 1/k! are correctly rounded.
_SIN = tuple((-1) ** (k // 2) / math.factorial(k) for k in range(23, 0, -2))
_COS = tuple((-1) ** (k // 2) / math.factorial(k) for k in range(24, -1, -2))
_EXP = tuple(1 / math.factorial(k) for k in range(20, -1, -1))
_ATANH = tuple(1 / k for k in range(25, 0, -2))


def _horner(coefficients, x):
  result = x * coefficients[0]  # the same product as c0 * x: IEEE * commutes
  result += coefficients[1]
  for c in coefficients[2:]:  # in place: the same roundings, fewer temporaries
    result *= x
    result += c
  return result


def mix64(x):
  """SplitMix64's finalizer: a bijective avalanche of uint64 values."""
  x = np.asarray(x, np.uint64)
  x = (x ^ (x >> np.uint64(30))) * _MIX1
  x = (x ^ (x >> np.uint64(27))) * _MIX2
  return x ^ (x >> np.uint64(31))


def hash_keys(*keys):
  """uint64 hash of non-negative integer keys (broadcast together), order-sensitive."""
  with np.errstate(over="ignore"):
    h = _HASH_INIT
    for key in keys:
      h = mix64(np.asarray(h, np.uint64) * _GOLDEN + np.asarray(key, np.uint64))
    return h


_EXPONENT_BIAS = 1022  # frexp's mantissa in [0.5, 1) has biased exponent 1022
_FRACTION_BITS = np.uint64((1 << 52) - 1)
# Fractions below this one give frexp mantissas below sqrt(1/2).
_SQRT_HALF_FRACTION = np.uint64(np.float64(_SQRT_HALF).view(np.uint64)) & _FRACTION_BITS


def _split_normal(x):
  """(m, e) with x = m 2^e and m in [sqrt(1/2), sqrt(2)), for positive normal
  float64 x, from the bits: the same values as `frexp` and doubling the mantissas
  below sqrt(1/2), both exact, in fewer passes."""
  bits = x.view(np.uint64)
  fraction = bits & _FRACTION_BITS
  small = (fraction < _SQRT_HALF_FRACTION).astype(np.uint64)
  biased = (bits >> np.uint64(52)).astype(np.int64)
  mantissa = (fraction | ((np.uint64(_EXPONENT_BIAS) + small) << np.uint64(52)))
  exponent = biased - (_EXPONENT_BIAS + small.astype(np.int64))
  return mantissa.view(np.float64), exponent.astype(np.float64)


def log(x):
  """Natural logarithm of float64 x > 0: frexp, then 2 atanh((m - 1) / (m + 1))."""
  x = np.asarray(x, np.float64)
  if x.size and x.min() >= np.finfo(np.float64).tiny and np.isfinite(x.max()):
    mantissa, exponent = _split_normal(x)
  else:  # subnormal, zero, negative or non-finite elements: frexp
    mantissa, exponent = np.frexp(x)
    small = mantissa < _SQRT_HALF
    mantissa = np.where(small, mantissa * 2., mantissa)  # in [sqrt(1/2), sqrt(2))
    exponent = np.where(small, exponent - 1, exponent).astype(np.float64)
  s = (mantissa - 1.) / (mantissa + 1.)  # |s| < 0.172
  return 2. * s * _horner(_ATANH, s * s) + exponent * _LN2


def exp2(x):
  """2**x for float64 x (|x| < 1000): ldexp of exp(frac * ln 2) by Taylor series."""
  x = np.asarray(x, np.float64)
  whole = np.floor(x)
  fraction = (x - whole) * _LN2  # in [0, ln 2)
  return np.ldexp(_horner(_EXP, fraction), whole.astype(np.int64))


def cos_two_pi(u):
  """cos(2 pi u) for float64 u in [0, 1)."""
  quarter = np.asarray(u, np.float64) * 4.
  quadrant = np.floor(quarter)
  theta = (quarter - quadrant) * _HALF_PI  # in [0, pi/2)
  # Quadrants 0..3 give cos, -sin, -cos, sin of theta. Both polynomials over
  # the whole array and a select are faster than gathering each quadrant's
  # elements (boolean indexing costs several arithmetic passes); the sign is a
  # product with +-1, exact like a negation.
  quadrant = quadrant.astype(np.int64)
  t2 = theta * theta
  result = _horner(_COS, t2)
  sine = _horner(_SIN, t2)
  sine *= theta
  np.copyto(result, sine, where=(quadrant & 1).astype(bool))
  result *= (1 - 2 * ((quadrant + 1) >> 1 & 1)).astype(np.float64)
  return result


def _unit_interval(bits):
  """uint64 -> float64 in (0, 1]: the top 53 bits plus one ulp (never 0)."""
  return ((bits >> np.uint64(11)).astype(np.float64) + 1.) * 2. ** -53


def normals(*keys):
  """Standard normal float64 samples, one per element of the broadcast `keys`.

  `keys` are non-negative integer arrays naming each sample; equal keys give
  equal samples on every machine.
  """
  radius = np.sqrt(-2. * log(_unit_interval(hash_keys(0, *keys))))
  angle = _unit_interval(hash_keys(1, *keys)) - 2. ** -53  # [0, 1)
  return radius * cos_two_pi(angle)
