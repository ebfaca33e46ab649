"""iREC image files: a posterior sample of the Bayesian AC VAE, coded in about KL bits.

The `vae.BLS2017VAE` posterior q(y|x) = N(mu, sigma^2) is coded against the prior
it was trained with, N(0, 1), by relative entropy coding (`irec`): the decoder
regenerates the encoder's sample y ~ q (not a quantized mean) and synthesizes
it. The latent's channels are iREC's groups: the file sends two bytes of
statistics per channel, which fix the block plan, so collapsed channels
(q = p) cost nothing and informative ones get blocks of about
block_steps * kl_per_block bits.

Files (`file_format.CompressedFile`, method "irec"): `y_shape` is the latent
(h, w), `z_shape` is (0, 0), `extra` holds the coder settings (`_EXTRA`: Omega,
epsilon, beams, seed, block steps), the one payload string is `irec.compress`'s
bytes, and the digest is the CRC of the decoded sample's float64 bits. The
fingerprint covers the VAE's weights and tables, as for Bayesian AC files.

Units: bpp from real file sizes, kl_bpp the posterior's KL per pixel, PSNR in dB,
MS-SSIM linear, times in seconds.
"""

import struct
import time

import numpy as np

from tfc_inference.coding import bayesian_ac_image
from tfc_inference.coding import file_format
from tfc_inference.coding import irec
from tfc_inference.models import tiling
from tfc_inference.util import metrics

METHOD = "irec"
_EXTRA = struct.Struct("<ddHIB")  # kl_per_block, extra_samples, beams, seed, block_steps


def _groups(latent_shape, num_channels):
  """Channel id of each latent in C order [h * w * N]."""
  return np.tile(np.arange(num_channels), int(np.prod(latent_shape)))


def _sample_digest(sample):
  return file_format.latents_digest(np.ascontiguousarray(sample, "<f8").view("<i8"))


def check_header(compressed, max_pixels=None):
  """Validates an iREC file's header before any decoding (FormatError).
  Returns its `irec.Settings`."""
  if compressed.method != METHOD:
    raise file_format.FormatError(f"a {compressed.method!r} file, not a {METHOD} file")
  file_format.check_geometry(
      compressed, lambda shape: (bayesian_ac_image.latent_shape(shape), (0, 0)),
      max_pixels, strings=1)
  if len(compressed.extra) != _EXTRA.size:
    raise file_format.FormatError("malformed irec header")
  omega, epsilon, beams, seed, steps = _EXTRA.unpack(compressed.extra)
  try:
    return irec.Settings(omega, epsilon, beams, seed, steps)
  except ValueError as error:
    raise file_format.FormatError(f"irec header: {error}") from None


class IRECImageCodec:
  """iREC with a loaded Bayesian AC run (`bayesian_ac_image.ImageCodec`)."""

  def __init__(self, codec):
    self.codec = codec
    self.run_name = codec.run_name

  @classmethod
  def load(cls, run, checkpoint_dir=None, name_only=False):
    return cls(bayesian_ac_image.ImageCodec.load(run, checkpoint_dir, name_only))

  def encode(self, posterior, settings, progress_fn=None):
    """(file bytes, the float64 sample [h, w, N] they decode to, coder info)."""
    shape = posterior.mu.shape
    data, sample, info = irec.compress(
        posterior.mu, posterior.sigma, 0., 1., settings,
        _groups(shape[:2], shape[2]), progress_fn)
    compressed = file_format.CompressedFile(
        method=METHOD, fingerprint=self.codec.fingerprint, run_name=self.run_name,
        image_shape=posterior.image_shape, y_shape=shape[:2], z_shape=(0, 0),
        strings=[data],
        extra=_EXTRA.pack(settings.kl_per_block, settings.extra_samples,
                          settings.beams, settings.seed, settings.block_steps),
        digest=_sample_digest(sample),
        tile=self.codec.tile_for(posterior.image_shape))
    return compressed.to_bytes(), sample, info

  def decode_latents(self, compressed, max_pixels=None):
    """(settings, latent sample [h, w, N]) of a parsed file."""
    settings = check_header(compressed, max_pixels)
    file_format.check_fingerprint(compressed, self.codec.fingerprint, self.run_name)
    shape = tuple(compressed.y_shape) + (self.codec.num_channels,)
    try:
      sample = irec.decompress(compressed.strings[0], 0., 1., shape, settings,
                               _groups(shape[:2], shape[2]))
    except ValueError as error:
      raise file_format.FormatError(f"irec payload: {error}") from None
    compressed.check_digest(np.ascontiguousarray(sample, "<f8").view("<i8"))
    return settings, sample

  def decode(self, data, max_pixels=None):
    """File bytes -> (uint8 image, info dict)."""
    compressed = file_format.CompressedFile.from_bytes(data)
    settings, sample = self.decode_latents(compressed, max_pixels)
    image = self.codec.reconstruct(sample, compressed.image_shape, compressed.tile)
    return image, dict(settings=settings, values=sample)

  def compress(self, image, settings, posterior=None, name=None, progress_fn=None):
    """Encodes one image, decodes the file as a receiver would, and measures it.

    Raises `bayesian_ac_image.CodingError` unless the decoded sample equals the
    encoded one. Returns (bytes, result dict).
    """
    start = time.time()
    if posterior is None:
      posterior = self.codec.analyze(image)
    data, sample, info = self.encode(posterior, settings, progress_fn)
    seconds = time.time() - start
    start = time.time()
    reconstruction, decoded = self.decode(data)
    decode_seconds = time.time() - start
    if not np.array_equal(decoded["values"], sample):
      raise bayesian_ac_image.CodingError("the decoded iREC sample differs from "
                                          "the encoded one")
    height, width = image.shape[:2]
    pixels = height * width
    result = dict(
        method=METHOD, run=self.run_name, image=name,
        kl_per_block=settings.kl_per_block, extra_samples=settings.extra_samples,
        beams=settings.beams, seed=settings.seed, block_steps=settings.block_steps,
        bpp=metrics.bits_per_pixel(len(data), height, width), num_bytes=len(data),
        kl_bpp=info["kl_bits"] / pixels, index_bpp=info["index_bits"] / pixels,
        coded_over_kl=8 * len(data) / max(info["kl_bits"], 1e-9),
        log_weight_bpp=info["log_weight_bits"] / pixels, blocks=info["blocks"],
        steps=info["steps"], psnr=metrics.psnr(image, reconstruction),
        ms_ssim=metrics.ms_ssim(image, reconstruction),
        mse=metrics.mse(image, reconstruction), seconds=seconds,
        decode_seconds=decode_seconds, height=height, width=width,
        tile_pixels=self.codec.tile_for(image.shape) * tiling.STRIDE)
    return data, result
