"""Lossy bits-back coding of the `BitsBackHyperprior` with constriction's ANS stack.

Paper: Yang, Bamler, Mandt (NeurIPS 2020), section 3.3 and Algorithm 1.

y_hat lives on the integer grid and is coded with p(y_hat | z_hat), the Gaussian
convolved with a unit uniform (tfc's `NoisyNormal` discretization, scales from the
same 64-level table as the mean-scale model). z is continuous; it is discretized on
a grid of width `2**-hyperprior.Z_GRID_BITS` for both q(z | y_hat) and p(z), so the grid's
log-width cancels between the cost of z and the bits got back.

encode: the stack starts as [seeded padding, side information xi]. z_hat is
*decoded* from it with Q(z | y_hat), then y_hat is pushed with P(y | z_hat) and z_hat
with P(z). decode pops z_hat, then y_hat, recomputes Q(z | y_hat) and pushes z_hat
back with it, which restores the initial stack: xi comes back bit for bit as long as
the decoder computes exactly the same q as the encoder (same weights, same math).
"""

import dataclasses
import math
import struct
import time
import zlib

import constriction
import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.inference import bbvi
from tfc_inference.models import hyperprior
from tfc_inference.models import scale_table
from tfc_inference.util import image_io

METHODS = ("mbt2018_bb", "bb_plain", "bb_no_sga", "bb_sga")
# SideInfoHeader's fields; files before 2026-12-04 lack the last one (B).
_EXTRA_FORMAT = "<IIIIBhhiiHfIB"
_EXTRA_FORMAT_WITHOUT_LIKELIHOOD = _EXTRA_FORMAT[:-1]
# Header bounds a decoder accepts (the decoder repeats BBVI, so its iteration
# count is decode work): 10x the paper's 2000 iterations, Adam rates in (0, 1].
MAX_BBVI_ITS = 20000
MAX_BBVI_LR = 1.
# constriction's stack coder represents probabilities with 24 bits.
_CODER_PRECISION_BITS = 24


@dataclasses.dataclass
class SideInfoHeader:
  """Bits-back bookkeeping stored in the file header's `extra` field."""
  side_info_bytes: int  # length of xi
  side_info_crc: int  # CRC-32 of xi
  pad_words: int  # seeded random 32-bit words below xi on the stack
  pad_seed: int
  grid_bits: int
  y_min: int
  y_max: int
  z_kmin: int
  z_kmax: int
  bbvi_its: int = 0  # 0: q(z | y_hat) is the amortized hyper-encoder's
  bbvi_lr: float = 0.003
  bbvi_seed: int = 0
  # How the BBVI evaluated log p(y | z) (`bbvi.LIKELIHOODS`); headers written
  # before the field existed read as tfc's four log-CDFs.
  bbvi_likelihood: int = bbvi.LIKELIHOOD_FOUR_LOG_CDFS

  def to_bytes(self):
    return struct.pack(_EXTRA_FORMAT, *dataclasses.astuple(self))

  @classmethod
  def from_bytes(cls, data):
    for layout in (_EXTRA_FORMAT, _EXTRA_FORMAT_WITHOUT_LIKELIHOOD):
      if len(data) == struct.calcsize(layout):
        return cls(*struct.unpack(layout, data))
    raise file_format.FormatError("bits-back header has the wrong size")

  def check(self, payload_words):
    """Raises FormatError unless every field is in the range an encoder writes."""
    problems = []
    if not 0 <= self.bbvi_its <= MAX_BBVI_ITS:
      problems.append(f"bbvi_its {self.bbvi_its} is above {MAX_BBVI_ITS}")
    if not (math.isfinite(self.bbvi_lr) and 0 < self.bbvi_lr <= MAX_BBVI_LR):
      problems.append(f"bbvi_lr {self.bbvi_lr} is not in (0, {MAX_BBVI_LR:g}]")
    if self.bbvi_likelihood not in bbvi.LIKELIHOODS:
      problems.append(f"bbvi_likelihood {self.bbvi_likelihood} is not one of "
                      f"{bbvi.LIKELIHOODS}")
    if not self.y_min < self.y_max:
      problems.append(f"y_min {self.y_min} is not below y_max {self.y_max}")
    if not self.z_kmin < self.z_kmax:
      problems.append(f"z_kmin {self.z_kmin} is not below z_kmax {self.z_kmax}")
    if self.pad_words + -(-self.side_info_bytes // 4) > payload_words + 1:
      problems.append("side information larger than the payload")
    if problems:
      raise file_format.FormatError("invalid bits-back header: "
                                    + "; ".join(problems))


def check_header(compressed, max_pixels=None):
  """Validates a bits-back file's header before any decoding (FormatError).
  Returns the parsed `SideInfoHeader`."""
  file_format.check_geometry(compressed, codec.latent_shapes, max_pixels,
                             strings=1)
  header = SideInfoHeader.from_bytes(compressed.extra)
  (payload,) = compressed.strings
  if len(payload) % 4:
    raise file_format.FormatError("bits-back payload is not whole 32-bit words")
  header.check(len(payload) // 4)
  return header


def _words_from_bytes(data):
  padded = bytes(data) + b"\0" * (-len(data) % 4)
  return np.frombuffer(padded, dtype="<u4").astype(np.uint32)


def _padding(words, seed):
  rng = np.random.default_rng([seed, 0xB175BAC])
  return rng.integers(0, 2 ** 32, size=words, dtype=np.uint32)


def random_side_info(num_bits, seed):
  """The paper's worst case: incompressible side information from a seeded RNG."""
  rng = np.random.default_rng([seed, 0x5151])
  return rng.integers(0, 256, size=-(-num_bits // 8), dtype=np.uint8).tobytes()


class BitsBackCoder:
  """Per-image bits-back encoder/decoder for a loaded `BitsBackHyperprior`.

  q(z | y_hat) is the amortized hyper-encoder's output, or, with `bbvi_its` > 0,
  the result of `bbvi.reproducible_bbvi` (which the decoder repeats exactly).
  """

  def __init__(self, model, bbvi_its=0, bbvi_lr=0.003, bbvi_seed=0,
               bbvi_likelihood=bbvi.LIKELIHOOD_FUSED):
    # The learning rate travels as float32 in the header; use that value here too.
    self.bbvi_its, self.bbvi_seed = int(bbvi_its), int(bbvi_seed)
    self.bbvi_likelihood = int(bbvi_likelihood)
    if self.bbvi_likelihood not in bbvi.LIKELIHOODS:
      raise ValueError(f"bbvi_likelihood must be one of {bbvi.LIKELIHOODS}, "
                       f"not {bbvi_likelihood!r}")
    self.bbvi_lr = float(np.float32(bbvi_lr))
    self._posterior_cache = {}
    self.bbvi_seconds = 0.
    if not isinstance(model, hyperprior.BitsBackHyperprior):
      raise TypeError("bits-back coding needs a BitsBackHyperprior (mbt2018_bb run)")
    self.model = model
    tables = model.tables
    self.z_probs = tables["bb_z_probs"]
    self.z_kmin = int(tables["bb_z_kmin"])
    self.z_kmax = self.z_kmin + self.z_probs.shape[1] - 1
    self.grid_bits = int(tables["bb_grid_bits"])
    self.delta = 2. ** -self.grid_bits
    self._z_models = [
        constriction.stream.model.Categorical(np.ascontiguousarray(p), perfect=False)
        for p in self.z_probs]

  # -- model pieces shared by encoder and decoder (batch of one, same ops)
  def posterior(self, y_hat):
    """Q(z | y_hat) in grid units: (mean, std) float64 arrays [1, h, w, N]."""
    y_hat = np.asarray(y_hat, np.float32)
    key = hash(y_hat.tobytes())
    if key not in self._posterior_cache:
      start = time.time()
      mean, log_var = bbvi.reproducible_bbvi(
          self.model, y_hat, self.bbvi_its, self.bbvi_lr, self.bbvi_seed,
          self.bbvi_likelihood)
      self.bbvi_seconds += time.time() - start
      std = np.exp(0.5 * log_var.astype(np.float64))
      self._posterior_cache = {key: (mean.astype(np.float64) / self.delta,
                                     std / self.delta)}
    return self._posterior_cache[key]

  def y_parameters(self, z_index, y_shape):
    z_hat = tf.constant(z_index * self.delta, tf.float32)
    loc, indexes = self.model.coding_conditional(z_hat, y_shape)
    scale = scale_table.scale_fn(scale_table.coding_indexes(indexes))
    return loc.numpy().astype(np.float64), scale.numpy().astype(np.float64)

  def _q_model(self):
    return constriction.stream.model.QuantizedGaussian(self.z_kmin, self.z_kmax)

  def _push_z_prior(self, coder, z_index):
    per_channel = z_index.reshape(-1, z_index.shape[-1])
    for c in reversed(range(per_channel.shape[1])):
      coder.encode_reverse(
          (per_channel[:, c] - self.z_kmin).astype(np.int32), self._z_models[c])

  def _pop_z_prior(self, coder, z_shape):
    count = int(np.prod(z_shape[:-1]))
    channels = [coder.decode(self._z_models[c], count) + self.z_kmin
                for c in range(z_shape[-1])]
    return np.stack(channels, -1).reshape(z_shape).astype(np.int64)

  def side_info_capacity_bits(self, y_hat):
    """Roughly how many bits decoding z with Q consumes (its entropy, + margin)."""
    _, std = self.posterior(y_hat)
    per_latent = np.maximum(np.log2(np.maximum(std, 1e-9)) + 2.05, 0.)
    return int(np.sum(per_latent) * 1.1) + 256

  def encode(self, y_hat, side_info, seed=0):
    """Bits-back codes integer `y_hat` [1, h, w, N] on top of `side_info` bytes.

    Returns (payload words, SideInfoHeader, z_index, info dict).
    """
    y_hat = np.asarray(y_hat, np.float32)
    mean, std = self.posterior(y_hat)
    needed_bits = self.side_info_capacity_bits(y_hat)
    xi_words = _words_from_bytes(side_info)
    pad_words = max(0, -(-(needed_bits - 32 * len(xi_words)) // 32))
    initial = np.concatenate([_padding(pad_words, seed), xi_words])
    coder = constriction.stream.stack.AnsCoder(initial, seal=True)
    # Step 4: decode z_hat from the side information with Q(z | y_hat).
    z_index = coder.decode(self._q_model(), mean.ravel(), std.ravel())
    z_index = z_index.reshape(mean.shape).astype(np.int64)
    # Step 5: push y_hat with P(y | z_hat), then z_hat with P(z).
    y_shape = y_hat.shape[1:3]
    loc, scale = self.y_parameters(z_index, y_shape)
    y_int = np.round(y_hat).astype(np.int32)
    y_min, y_max = int(y_int.min()) - 1, int(y_int.max()) + 1
    coder.encode_reverse(
        y_int.ravel(), constriction.stream.model.QuantizedGaussian(y_min, y_max),
        loc.ravel(), scale.ravel())
    self._push_z_prior(coder, z_index)
    header = SideInfoHeader(
        side_info_bytes=len(side_info), side_info_crc=zlib.crc32(side_info),
        pad_words=pad_words, pad_seed=seed, grid_bits=self.grid_bits,
        y_min=y_min, y_max=y_max, z_kmin=self.z_kmin, z_kmax=self.z_kmax,
        bbvi_its=self.bbvi_its, bbvi_lr=self.bbvi_lr, bbvi_seed=self.bbvi_seed,
        bbvi_likelihood=self.bbvi_likelihood)
    info = dict(side_info_bits=8 * len(side_info), padding_bits=32 * pad_words,
                side_info_needed_bits=needed_bits, bbvi_seconds=self.bbvi_seconds)
    return coder.get_compressed(), header, z_index, info

  def decode(self, words, header, y_shape, z_shape, compressed=None):
    """Inverse of `encode`: returns (y_hat float32, side_info bytes or None, info).

    With the parsed file `compressed`, the decoded symbols are checked against its
    digest before the bits are got back."""
    if (header.grid_bits, header.z_kmin, header.z_kmax) != (
        self.grid_bits, self.z_kmin, self.z_kmax):
      raise file_format.FormatError("bits-back grid differs from the checkpoint's")
    coder = constriction.stream.stack.AnsCoder(np.asarray(words, np.uint32))
    z_index = self._pop_z_prior(coder, (1, *z_shape, self.model.num_filters))
    loc, scale = self.y_parameters(z_index, y_shape)
    y_int = coder.decode(
        constriction.stream.model.QuantizedGaussian(header.y_min, header.y_max),
        loc.ravel(), scale.ravel())
    y_hat = y_int.reshape(loc.shape).astype(np.float32)
    if compressed is not None:
      compressed.check_digest(z_index, y_int.reshape(loc.shape))
    # Get the bits back: re-encode z_hat with Q(z | y_hat).
    mean, std = self.posterior(y_hat)
    coder.encode_reverse((z_index.ravel()).astype(np.int32), self._q_model(),
                         mean.ravel(), std.ravel())
    stack = coder.get_compressed()
    side_info, messages = _recover_side_info(stack, header)
    return y_hat, side_info, dict(messages=messages,
                                  side_info_ok=side_info is not None)


def _recover_side_info(stack, header):
  """Splits the restored stack into padding and xi; checks both."""
  xi_words = -(-header.side_info_bytes // 4)
  expected_len = header.pad_words + xi_words + 1  # +1: the seal word
  messages = []
  if len(stack) == expected_len and stack[-1] == 1:
    body = stack[:-1]
    xi = body[header.pad_words:].astype("<u4").tobytes()[:header.side_info_bytes]
    padding_ok = np.array_equal(body[:header.pad_words],
                                _padding(header.pad_words, header.pad_seed))
    if zlib.crc32(xi) == header.side_info_crc and padding_ok:
      messages.append(f"side information recovered: {8 * len(xi)} bits, checksum OK")
      return xi, messages
  messages.append("side information FAILED its checksum (the decoder's q(z|y) "
                  "differs from the encoder's, e.g. other floating point); the "
                  "image itself decoded correctly")
  return None, messages


def _coded_bits(log2_probs):
  """Bits of symbols under a leaky model of the stack coder: a symbol in range
  costs at most its precision, however small the model's probability."""
  return float(np.sum(np.minimum(-np.asarray(log2_probs), _CODER_PRECISION_BITS)))


def estimate_net_bits(coder, y_hat, z_index):
  """Model estimate of -log P(y|z) - log P(z) + log Q(z|y) in bits (one image).

  Each symbol is charged at most the coder's precision (constriction's leaky
  models give every symbol in range a probability of at least 2^-24). Without
  that bound a z drawn from Q's floor (e.g. with random side information on a
  tiny image) made the estimate thousands of bits negative.
  """
  model = coder.model
  loc, scale = coder.y_parameters(z_index, y_hat.shape[1:3])
  y = tf.constant(y_hat, tf.float64)
  p_y = tfc.NoisyNormal(loc=tf.constant(loc), scale=tf.constant(scale))
  bits_y = _coded_bits(p_y.log_prob(y).numpy() / np.log(2.))
  flat = z_index.reshape(-1, model.num_filters) - coder.z_kmin
  probs = coder.z_probs / coder.z_probs.sum(axis=1, keepdims=True)
  bits_z = _coded_bits(np.log2(np.maximum(
      probs[np.arange(model.num_filters)[None], flat], 1e-300)))
  mean, std = coder.posterior(y_hat)
  q = tfc.NoisyNormal(loc=tf.constant(mean), scale=tf.constant(std))
  bits_q = _coded_bits(
      q.log_prob(tf.constant(z_index, tf.float64)).numpy() / np.log(2.))
  return bits_y + bits_z - bits_q


def encode_file(model, run_name, method, image, y_hat, side_info=None, seed=0,
                bbvi_its=0, bbvi_lr=0.003, bbvi_seed=0,
                bbvi_likelihood=bbvi.LIKELIHOOD_FUSED):
  """Writes the file for integer latents `y_hat` [1, h, w, N] of one image.

  With `bbvi_its` > 0, q(z | y_hat) comes from reproducible BBVI (Algorithm 1,
  step 3), evaluating log p(y | z) as `bbvi_likelihood` says (recorded in the
  header). The file records `model.tile` for the decoder's synthesis. Returns
  (file bytes, info dict with side_info_bits, padding_bits, est_net_bits,
  bbvi_seconds).
  """
  coder = BitsBackCoder(model, bbvi_its, bbvi_lr, bbvi_seed, bbvi_likelihood)
  if side_info is None:
    side_info = random_side_info(coder.side_info_capacity_bits(y_hat), seed)
  words, header, z_index, info = coder.encode(y_hat, side_info, seed=seed)
  y_shape, z_shape = codec.latent_shapes(image.shape)
  compressed = file_format.CompressedFile(
      method=method, fingerprint=model.fingerprint(), run_name=run_name,
      image_shape=image.shape[:2], y_shape=y_shape, z_shape=z_shape,
      strings=[words.astype("<u4").tobytes()], extra=header.to_bytes(),
      digest=file_format.latents_digest(z_index, np.round(y_hat)),
      tile=model.tile)
  info["est_net_bits"] = estimate_net_bits(coder, np.asarray(y_hat), z_index)
  info["side_info"] = side_info
  return compressed.to_bytes(), info


def decode_file(model, compressed, max_pixels=None):
  """Parsed file -> (uint8 image, info with `side_info`, `messages`, `y_hat`)."""
  header = check_header(compressed, max_pixels)
  (payload,) = compressed.strings
  words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
  coder = BitsBackCoder(model, header.bbvi_its, header.bbvi_lr, header.bbvi_seed,
                        header.bbvi_likelihood)
  y_hat, side_info, info = coder.decode(
      words, header, compressed.y_shape, compressed.z_shape, compressed)
  with model.tiled(compressed.tile):
    x_hat = model.synthesize(tf.constant(y_hat))[0]
  height, width = compressed.image_shape
  info.update(side_info=side_info, y_hat=y_hat, bbvi_seconds=coder.bbvi_seconds)
  return image_io.to_uint8(x_hat[:height, :width].numpy()), info
