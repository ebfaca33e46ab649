"""Relative entropy coding of a mean-field Gaussian sample with beam search (iREC).

Flamich, Havasi & Hernandez-Lobato (NeurIPS 2020), "Compressing images by
encoding their latent representations with relative entropy coding". Encoder and
decoder share a seed. Instead of quantizing, the encoder picks, among samples of
the coding distribution p (the prior), ones that follow the target q (the
posterior), and transmits only their indices: about KL(q || p) bits, no
quantizer and no discretized prior.

All distributions here are diagonal Gaussians, handled in prior-normalized
coordinates z' = (z - prior_loc) / prior_scale, where p = N(0, 1) and
q = N(m, s^2) per dimension.

Blocks and auxiliary variables. The latent's dimensions are split into blocks
(`plan`); within a block, the sample is a sum of K auxiliary variables
a_1 + ... + a_K, a_k ~ N(0, f_k - f_{k-1}) under p, where 0 = f_0 < ... < f_K = 1
are cumulative fractions of the prior variance. Under q the partial sum
b_k = a_1 + ... + a_k has the Gaussian marginal N(f_k m, f_k^2 s^2 + f_k (1 - f_k))
so each step is a small importance sampler: draw `num_candidates` candidates of
a_k from p and score them. The fractions are chosen so that each step carries
about `kl_per_block` bits (Omega), and a step of k bits draws
ceil(2^(k (1 + extra_samples))) candidates.

Beam search. Each (beam, candidate) pair is scored by the log density ratio of
the new partial sum, log q(b_k) - log p(b_k), which equals the log importance
weight of the whole index path so far (given b_k, the a's have the same
conditional under q and p). The best `beams` paths are kept; the best final path
is sent. With one beam this is greedy importance sampling, step by step: the
candidate of largest weight q(a_k | b_{k-1}) / p(a_k). Candidates are shared by
the beams (they are prior samples, independent of the path), which saves a
factor `beams` of sampling.

Side information. The decoder needs the plan. It is computed, identically on
both sides, from the decoder-known grouping of dimensions (e.g. the channels of
an image latent) and two quantized statistics per group that the encoder sends
(`GroupStatistics`: the mean KL per dimension, and the geometric-mean variance
ratio s^2 that shapes the fractions). Everything the decoder evaluates to
regenerate candidates uses `exact_math`, so the sample is bit-exact everywhere.

`compress` / `decompress` wrap it all into bytes: the group statistics, a CRC of
the sample (a wrong seed or plan is an error, not a wrong sample) and the
indices, each coded uniformly with constriction's ANS coder (log2 n bits).

Units: KL and rates in bits; `kl_per_block` (Omega) in bits per step.
"""

import dataclasses
import math
import struct
import zlib
from typing import List, Sequence

import constriction
import numpy as np

from tfc_inference.util import exact_math

# Quantization of the per-group statistics (one byte each).
KL_STEP_BITS = 1 / 8  # mean KL per dimension, in steps of 1/8 bit, up to 31.875
VARIANCE_STEP_LOG2 = 1 / 4  # s^2 = 2^(-code / 4), code 0..255 (s^2 down to 2^-63.75)
MAX_CODE = 255
MAX_BLOCK_DIMS = 4096
MAX_CANDIDATE_BITS = 24
_LOG2E = 1 / math.log(2)


@dataclasses.dataclass(frozen=True)
class Settings:
  """Coder settings shared by encoder and decoder (stored in the file).

  kl_per_block: Omega, the KL in bits of one auxiliary step, i.e. of one block
    of the index stream (the paper's Omega).
  extra_samples: epsilon; a step whose KL is k bits draws ceil(2^(k (1 + eps)))
    candidates (at most 2^MAX_CANDIDATE_BITS).
  beams: paths kept by the beam search (1: greedy importance sampling).
  seed: the shared seed of the candidates.
  block_steps: auxiliary steps per block of dimensions (its KL is about
    block_steps * Omega); the beam search runs over a block's steps.
  """
  kl_per_block: float = 12.
  extra_samples: float = 0.1
  beams: int = 1
  seed: int = 0
  block_steps: int = 4

  def __post_init__(self):
    if not 1. <= self.kl_per_block <= 20.:
      raise ValueError(f"kl_per_block must be in [1, 20] bits, not {self.kl_per_block}")
    if not 0. <= self.extra_samples <= 1.:
      raise ValueError(f"extra_samples must be in [0, 1], not {self.extra_samples}")
    if not 1 <= self.beams <= 256:
      raise ValueError(f"beams must be in [1, 256], not {self.beams}")
    if not 0 <= self.seed < 2 ** 32:
      raise ValueError(f"seed must be in [0, 2^32), not {self.seed}")
    if not 1 <= self.block_steps <= 64:
      raise ValueError(f"block_steps must be in [1, 64], not {self.block_steps}")


@dataclasses.dataclass(frozen=True)
class GroupStatistics:
  """Quantized per-group statistics the decoder needs to rebuild the plan.

  kl_codes: uint8 [G], mean KL per dimension in units of KL_STEP_BITS.
  variance_codes: uint8 [G], s^2 = 2^(-code * VARIANCE_STEP_LOG2), the geometric
    mean of the variance ratio q/p over the group's dimensions.
  """
  kl_codes: np.ndarray
  variance_codes: np.ndarray

  def to_bytes(self):
    return (np.asarray(self.kl_codes, np.uint8).tobytes()
            + np.asarray(self.variance_codes, np.uint8).tobytes())

  @classmethod
  def from_bytes(cls, data, num_groups):
    if len(data) != 2 * num_groups:
      raise ValueError(f"{len(data)} bytes of group statistics, expected "
                       f"{2 * num_groups}")
    codes = np.frombuffer(data, np.uint8)
    return cls(codes[:num_groups].copy(), codes[num_groups:].copy())


@dataclasses.dataclass(frozen=True)
class Block:
  """Dimensions coded together: their cumulative variance fractions [K] (one
  auxiliary step each) and the candidates drawn at every step."""
  dims: np.ndarray
  fractions: np.ndarray
  num_candidates: int

  @property
  def bits(self):
    """The coded length of the block's indices: K log2(num_candidates)."""
    return len(self.fractions) * math.log2(self.num_candidates)


def normalize(mu, sigma, prior_loc, prior_scale):
  """Flattened float64 (m, s) of q in prior-normalized coordinates."""
  mu, sigma, loc, scale = np.broadcast_arrays(
      *(np.asarray(v, np.float64) for v in (mu, sigma, prior_loc, prior_scale)))
  return ((mu - loc) / scale).ravel(), (sigma / scale).ravel()


def kl_bits(m, s):
  """KL(N(m, s^2) || N(0, 1)) per dimension, in bits."""
  return 0.5 * (s * s + m * m - 1. - 2. * np.log(s)) * _LOG2E


def partial_sum_kl_bits(fraction, m, s):
  """KL(q(b) || p(b)) in bits of the partial sum at cumulative fraction f."""
  f = np.asarray(fraction, np.float64)
  return 0.5 * (f * (s * s + m * m - 1.) - np.log1p(-f * (1. - s * s))) * _LOG2E


def group_statistics(m, s, groups, num_groups):
  """The quantized `GroupStatistics` of normalized (m, s) for `groups` [D] ids."""
  groups = np.asarray(groups).ravel()
  counts = np.maximum(np.bincount(groups, minlength=num_groups), 1)
  mean_kl = np.bincount(groups, kl_bits(m, s), num_groups) / counts
  log2_variance = np.bincount(groups, np.log2(np.minimum(s * s, 1.)), num_groups)
  log2_variance /= counts
  kl_codes = np.clip(np.round(mean_kl / KL_STEP_BITS), 0, MAX_CODE)
  variance_codes = np.clip(np.round(-log2_variance / VARIANCE_STEP_LOG2), 0, MAX_CODE)
  return GroupStatistics(kl_codes.astype(np.uint8), variance_codes.astype(np.uint8))


def variance_fractions(steps, variance_code):
  """Cumulative fractions [K] that give each step about equal KL.

  For a dimension with variance ratio s^2 and a mean near the prior's, the KL of
  the partial sum grows like -log(1 - f (1 - s^2)) / 2, so equal KL steps have
  1 - f_k (1 - s^2) = (s^2)^(k / K). Computed with `exact_math` (the decoder
  rebuilds them), from the group's quantized s^2.
  """
  k = np.arange(1, steps + 1, dtype=np.float64)
  if variance_code == 0 or steps == 1:
    fractions = k / steps
  else:
    log2_ratio = -float(variance_code) * VARIANCE_STEP_LOG2
    ratio = float(exact_math.exp2(np.float64(log2_ratio)))
    fractions = (1. - exact_math.exp2(log2_ratio * k / steps)) / (1. - ratio)
  fractions[-1] = 1.
  return fractions


def num_candidates(step_kl_bits, extra_samples):
  """ceil(2^(k (1 + eps))) candidates for a step of k bits (exact on every machine)."""
  bits = min(step_kl_bits * (1. + extra_samples), MAX_CANDIDATE_BITS)
  return max(1, int(np.ceil(exact_math.exp2(np.float64(bits)))))


def plan(groups, stats, settings, max_block_dims=MAX_BLOCK_DIMS) -> List[Block]:
  """Blocks of the flattened latent, from `groups` [D] ids and `stats`.

  In each group (dimensions in increasing order), blocks hold L dimensions with
  L * mean KL about `block_steps * kl_per_block` (at least 1, at most
  `max_block_dims`); a block takes K = max(1, round(L * mean KL / kl_per_block))
  steps of equal KL
  k = L * mean KL / K, each with `num_candidates(k)` candidates. Only integer
  codes, correctly rounded arithmetic and `exact_math` are used: encoder and
  decoder get the same plan.
  """
  kl_per_block = settings.kl_per_block
  groups = np.asarray(groups).ravel()
  order = np.argsort(groups, kind="stable")
  starts = np.searchsorted(groups[order], np.arange(len(stats.kl_codes)))
  ends = np.append(starts[1:], len(order))
  blocks = []
  for g, (start, end) in enumerate(zip(starts, ends)):
    kl_per_dim = int(stats.kl_codes[g]) * KL_STEP_BITS
    if kl_per_dim > 0:
      size = round(settings.block_steps * kl_per_block / kl_per_dim)
      size = int(min(max(size, 1), max_block_dims))
    else:
      size = max_block_dims
    for first in range(start, end, size):
      dims = order[first:min(first + size, end)]
      steps = max(1, int(round(len(dims) * kl_per_dim / kl_per_block)))
      count = num_candidates(len(dims) * kl_per_dim / steps, settings.extra_samples)
      blocks.append(Block(dims, variance_fractions(steps, int(stats.variance_codes[g])),
                          count))
  return blocks


def _step_std(fractions, step):
  previous = fractions[:, step - 1] if step else np.zeros(len(fractions))
  return np.sqrt(fractions[:, step] - previous)


# Normals per `exact_math.normals` call: each of its ~60 elementwise passes then
# stays in the core's cache (about 1.5x faster per normal than one call for a
# whole chunk), and the call overhead is still small.
_NORMALS_PER_CALL = 2 ** 16


def _candidates(seed, block_ids, step, candidates, num_dims, fractions):
  """Candidates [nb, n, L] of step `step` (0-based) of blocks `block_ids` [nb].

  `candidates` are their indices, [n] (the same for every block) or [nb, n].
  """
  candidates = np.broadcast_to(candidates, (len(block_ids), np.shape(candidates)[-1]))
  count = candidates.shape[1]
  g = np.empty((len(block_ids), count, num_dims))
  piece = max(1, _NORMALS_PER_CALL // max(len(block_ids) * num_dims, 1))
  dims = np.arange(num_dims)[None, None, :]
  for first in range(0, count, piece):  # every normal depends on its keys only
    part = candidates[:, first:first + piece, None]
    g[:, first:first + piece] = exact_math.normals(seed, block_ids[:, None, None],
                                                   step, part, dims)
  return _step_std(fractions, step)[:, None, None] * g


def _path_scores(sums, a, fraction, m, s):
  """log q(b) - log p(b) (nats) of every new partial sum b = sums + a.

  sums [nb, beams, L] are the beams' partial sums, a [nb, n, L] the step's
  candidates, fraction [nb] the step's cumulative fraction, m, s [nb, L] the
  normalized target. Returns [nb, beams, n]. The per-dimension log ratio is a
  quadratic c2 b^2 + c1 b + c0 in b, so expanding b = sums + a turns the sum over
  L into one batched matrix product instead of a [nb, beams, n, L] array. Only
  the encoder scores (the decoder just adds the chosen candidates), so this
  need not be `exact_math`.
  """
  f = fraction[:, None]
  var_q = f * f * s * s + f * (1. - f)
  c2 = 0.5 / f - 0.5 / var_q
  c1 = f * m / var_q
  c0 = -0.5 * (f * m) ** 2 / var_q - 0.5 * np.log(var_q / f)
  c2b = c2[:, None, :]
  per_beam = np.sum((c2b * sums + c1[:, None, :]) * sums + c0[:, None, :], axis=-1)
  cross = np.matmul(2. * c2b * sums + c1[:, None, :], np.swapaxes(a, 1, 2))
  per_candidate = np.matmul(a * a, c2[:, :, None])[:, :, 0]
  return per_beam[:, :, None] + cross + per_candidate[:, None, :]


def _best(scores, keep):
  """Indices [nb, keep] of the largest `scores` [nb, N] per row, best first
  (ties: the smaller index first)."""
  if keep >= scores.shape[1]:
    return np.argsort(-scores, axis=1, kind="stable")
  if keep == 1:
    return np.argmax(scores, axis=1)[:, None]
  top = np.sort(np.argpartition(-scores, keep - 1, axis=1)[:, :keep], axis=1)
  order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
  return np.take_along_axis(top, order, axis=1)


# Candidate values one scoring pass may hold ([nb, n, L] floats). A step whose
# candidates exceed it (e.g. Omega 16: 1.8 million candidates of blocks of up to
# MAX_BLOCK_DIMS dimensions, gigabytes) is scored in pieces of candidates with a
# running top `beams`; the chosen candidates are then regenerated from their keys.
_MAX_STEP_FLOATS = 2 ** 23


def _merge_best(scores, flat, keep):
  """Best `keep` of `scores` [nb, N] with their `flat` path indices [nb, N]:
  largest score first, ties to the smaller path index (as `_best` breaks them)."""
  order = np.lexsort((flat, -scores), axis=-1)[:, :keep]
  return (np.take_along_axis(scores, order, axis=1),
          np.take_along_axis(flat, order, axis=1))


def _step(seed, ids, step, count, fractions, sums, mb, sb, keep):
  """One beam-search step of blocks `ids`: the chosen (beam, candidate) paths
  ([nb, keep] each), their scores (nats) and the chosen candidates [nb, keep, L].

  Scores all `count` candidates at once when they fit in `_MAX_STEP_FLOATS`,
  otherwise piece by piece (the same choice up to the float rounding of the
  scores; the decoder only adds the chosen candidates, so files decode the same
  either way).
  """
  num_dims = sums.shape[2]
  rows = np.arange(len(ids))[:, None]
  piece = max(1, _MAX_STEP_FLOATS // (len(ids) * num_dims))
  if count <= piece:
    a = _candidates(seed, ids, step, np.arange(count), num_dims, fractions)
    flat = _path_scores(sums, a, fractions[:, step], mb, sb).reshape(len(ids), -1)
    best = _best(flat, keep)
    beam, candidate = np.divmod(best, count)
    return beam, candidate, flat[rows, best], a[rows, candidate]
  top = np.full((len(ids), 0), -np.inf)
  top_flat = np.zeros((len(ids), 0), np.int64)
  beams = sums.shape[1]
  for first in range(0, count, piece):
    indices = np.arange(first, min(first + piece, count))
    a = _candidates(seed, ids, step, indices, num_dims, fractions)
    score = _path_scores(sums, a, fractions[:, step], mb, sb)  # [nb, beams, p]
    best = _best(score.reshape(len(ids), -1), keep)
    beam, local = np.divmod(best, len(indices))
    flat = beam * count + indices[local]
    top, top_flat = _merge_best(
        np.concatenate([top, score[rows, beam, local]], axis=1),
        np.concatenate([top_flat, flat], axis=1), min(keep, beams * count))
  beam, candidate = np.divmod(top_flat, count)
  return (beam, candidate, top,
          _candidates(seed, ids, step, candidate, num_dims, fractions))


def _groups_of_blocks(blocks):
  """Indices of blocks with equal (dims, steps, candidates): they run vectorized."""
  shapes = {}
  for i, block in enumerate(blocks):
    key = (len(block.dims), len(block.fractions), block.num_candidates)
    shapes.setdefault(key, []).append(i)
  return shapes


# Floats of work per vectorized chunk of blocks: small enough that a chunk's
# arrays stay near the cache (2^24 was about 1.3x slower), large enough that the
# Python loop over chunks costs little.
_WORK_PER_CHUNK = 2 ** 20


def _chunks(indices, per_block):
  """Runs of `indices` holding about `_WORK_PER_CHUNK` floats of work each."""
  size = max(1, int(_WORK_PER_CHUNK // max(per_block, 1)))
  for i in range(0, len(indices), size):
    yield np.asarray(indices[i:i + size])


def encoding_work(blocks, settings):
  """Candidate values `encode` scores for `blocks`: its time is proportional."""
  return sum(len(b.fractions) * b.num_candidates * settings.beams * len(b.dims)
             for b in blocks)


def encode(mu, sigma, prior_loc, prior_scale, blocks: Sequence[Block], settings,
           progress_fn=None):
  """Chooses candidate indices for every block and step.

  Args:
    mu, sigma: the target q, any shape (flattened in C order).
    prior_loc, prior_scale: the coding distribution p, broadcastable to mu.
    blocks: `plan`'s blocks over the flattened dimensions.
    settings: `Settings`.
    progress_fn: if set, called after each chunk of blocks with (work done,
      total work), in units of `encoding_work`.
  Returns:
    (indices, sample, log_weights): indices, a list (one int array [K] per
    block); the decoded sample (same shape as mu, float64, what `decode`
    returns); log_weights [num blocks], log q/p of each block's sample in bits.
  """
  m, s = normalize(mu, sigma, prior_loc, prior_scale)
  shape = np.broadcast_shapes(np.shape(mu), np.shape(sigma), np.shape(prior_loc),
                              np.shape(prior_scale))
  z = np.zeros(m.size)
  indices = [None] * len(blocks)
  log_weights = np.zeros(len(blocks))
  total, done = encoding_work(blocks, settings), 0
  for (num_dims, steps, count), members in _groups_of_blocks(blocks).items():
    for ids in _chunks(members, count * settings.beams * num_dims):
      dims = np.stack([blocks[i].dims for i in ids])
      fractions = np.stack([blocks[i].fractions for i in ids])
      mb, sb = m[dims], s[dims]
      sums = np.zeros((len(ids), 1, num_dims))  # [nb, beams, L]
      paths = np.zeros((len(ids), 1, 0), np.int64)
      rows = np.arange(len(ids))[:, None]
      for step in range(steps):
        beam, candidate, top, chosen = _step(settings.seed, ids, step, count,
                                             fractions, sums, mb, sb, settings.beams)
        # The same additions as the decoder's, in the same order: bit-exact.
        sums = sums[rows, beam] + chosen
        paths = np.concatenate([paths[rows, beam], candidate[..., None]], axis=2)
      for j, i in enumerate(ids):
        indices[i] = paths[j, 0]
        z[blocks[i].dims] = sums[j, 0]
        log_weights[i] = top[j, 0] * _LOG2E
      done += len(ids) * steps * count * settings.beams * num_dims
      if progress_fn is not None:
        progress_fn(done, total)
  loc, scale = (np.broadcast_to(np.asarray(v, np.float64), shape).ravel()
                for v in (prior_loc, prior_scale))
  return indices, (loc + scale * z).reshape(shape), log_weights


def decode(indices, prior_loc, prior_scale, shape, blocks, settings):
  """The sample `encode` chose, from its indices: float64 array of `shape`."""
  if len(indices) != len(blocks):
    raise ValueError(f"{len(indices)} index paths for {len(blocks)} blocks")
  z = np.zeros(int(np.prod(shape)))
  for (num_dims, steps, count), members in _groups_of_blocks(blocks).items():
    for ids in _chunks(members, num_dims):
      chosen = np.stack([np.asarray(indices[i], np.int64) for i in ids])
      if chosen.shape[1] != steps:
        raise ValueError("an index path has the wrong number of steps")
      if np.any(chosen < 0) or np.any(chosen >= count):
        raise ValueError("a candidate index is out of range")
      fractions = np.stack([blocks[i].fractions for i in ids])
      sums = np.zeros((len(ids), num_dims))
      for step in range(steps):
        # The same products and sums, in the same order, as `encode`.
        a = _candidates(settings.seed, ids, step, chosen[:, step:step + 1],
                        num_dims, fractions)
        sums = sums + a[:, 0, :]
      for j, i in enumerate(ids):
        z[blocks[i].dims] = sums[j]
  loc, scale = (np.broadcast_to(np.asarray(v, np.float64), shape).ravel()
                for v in (prior_loc, prior_scale))
  return (loc + scale * z).reshape(shape)


def _coded_steps(blocks, indices=None):
  """(sizes, symbols) of every step that carries information (n > 1), in order."""
  sizes, symbols = [], []
  for i, block in enumerate(blocks):
    if block.num_candidates > 1:
      sizes.append(np.full(len(block.fractions), block.num_candidates, np.int64))
      if indices is not None:
        symbols.append(np.asarray(indices[i], np.int64))
  join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)
  return join(sizes), (join(symbols) if indices is not None else None)


def pack_indices(indices, blocks):
  """The index paths as bytes: each index coded uniformly, log2(n) bits."""
  sizes, symbols = _coded_steps(blocks, indices)
  if not len(sizes):
    return b""
  coder = constriction.stream.stack.AnsCoder()
  coder.encode_reverse(symbols.astype(np.int32), constriction.stream.model.Uniform(),
                       sizes.astype(np.int32))
  return coder.get_compressed().astype("<u4").tobytes()


def unpack_indices(data, blocks):
  """Inverse of `pack_indices`; raises ValueError on a truncated or padded stream."""
  sizes, _ = _coded_steps(blocks)
  if len(data) % 4:
    raise ValueError(f"index stream of {len(data)} bytes is not whole 32-bit words")
  if not len(sizes):
    if data:
      raise ValueError("index stream holds data, but no block has indices")
    symbols = np.zeros(0, np.int64)
  else:
    if not data:
      raise ValueError("index stream is empty")
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    try:
      symbols = np.asarray(coder.decode(constriction.stream.model.Uniform(),
                                        sizes.astype(np.int32)), np.int64)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"index stream does not decode: {error}") from None
    if not coder.is_empty():
      raise ValueError("index stream does not match its blocks (truncated, padded "
                       "or coded with another plan)")
  indices, offset = [], 0
  for block in blocks:
    steps = len(block.fractions)
    if block.num_candidates > 1:
      indices.append(symbols[offset:offset + steps])
      offset += steps
    else:
      indices.append(np.zeros(steps, np.int64))
  return indices


def sample_digest(sample):
  """CRC-32 of the float64 bits of a sample: the decoder checks it, so a wrong
  seed, plan or index stream is an error instead of a silently wrong sample."""
  return zlib.crc32(np.ascontiguousarray(sample, "<f8").tobytes())


_DIGEST = struct.Struct("<I")


def compress(mu, sigma, prior_loc, prior_scale, settings, groups=None,
             progress_fn=None):
  """Codes a sample of N(mu, sigma^2) against N(prior_loc, prior_scale^2).

  Args:
    mu, sigma: the target, any shape; prior_loc, prior_scale broadcast to it.
    settings: `Settings` (the decoder needs the same).
    groups: int group id [D] of each flattened dimension, known to the decoder
      (default: one group); group statistics are sent per group.
    progress_fn: see `encode`.
  Returns:
    (data, sample, info): the bytes; the float64 sample they decode to; a dict
    with kl_bits (KL(q || p)), coded_bits (8 * len(data)), index_bits, and
    log_weight_bits (log q/p of the sample).
  """
  m, s = normalize(mu, sigma, prior_loc, prior_scale)
  groups = np.zeros(m.size, np.int64) if groups is None else np.asarray(groups).ravel()
  num_groups = int(groups.max()) + 1 if groups.size else 1
  stats = group_statistics(m, s, groups, num_groups)
  blocks = plan(groups, stats, settings)
  indices, sample, log_weights = encode(mu, sigma, prior_loc, prior_scale, blocks,
                                        settings, progress_fn)
  index_data = pack_indices(indices, blocks)
  data = stats.to_bytes() + _DIGEST.pack(sample_digest(sample)) + index_data
  info = dict(kl_bits=float(kl_bits(m, s).sum()), coded_bits=8 * len(data),
              index_bits=8 * len(index_data),
              log_weight_bits=float(log_weights.sum()), blocks=len(blocks),
              steps=int(sum(len(b.fractions) for b in blocks)))
  return data, sample, info


def decompress(data, prior_loc, prior_scale, shape, settings, groups=None):
  """The sample `compress` coded: float64 array of `shape`; ValueError if the
  bytes do not decode to it (truncated data, another seed, plan or prior)."""
  size = int(np.prod(shape))
  groups = np.zeros(size, np.int64) if groups is None else np.asarray(groups).ravel()
  num_groups = int(groups.max()) + 1 if groups.size else 1
  head = 2 * num_groups
  if len(data) < head + _DIGEST.size:
    raise ValueError(f"iREC data of {len(data)} bytes is shorter than its header")
  stats = GroupStatistics.from_bytes(data[:head], num_groups)
  (digest,) = _DIGEST.unpack_from(data, head)
  blocks = plan(groups, stats, settings)
  indices = unpack_indices(data[head + _DIGEST.size:], blocks)
  sample = decode(indices, prior_loc, prior_scale, shape, blocks, settings)
  if sample_digest(sample) != digest:
    raise ValueError("the decoded sample fails its CRC: decoded with another seed, "
                     "settings or prior than it was coded with")
  return sample
