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
the exact `frexp`, `ldexp` and `floor`.

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
  result = np.full_like(x, coefficients[0])
  for c in coefficients[1:]:  # in place: the same roundings, fewer temporaries
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


def log(x):
  """Natural logarithm of float64 x > 0: frexp, then 2 atanh((m - 1) / (m + 1))."""
  mantissa, exponent = np.frexp(np.asarray(x, np.float64))
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
  # Quadrants 0..3 give cos, -sin, -cos, sin of theta: each element evaluates
  # only the polynomial it needs.
  odd = (quadrant == 1) | (quadrant == 3)
  result = np.empty_like(theta)
  t = theta[odd]
  result[odd] = _horner(_SIN, t * t) * t
  t = theta[~odd]
  result[~odd] = _horner(_COS, t * t)
  negative = (quadrant == 1) | (quadrant == 2)
  result[negative] = -result[negative]
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
