"""Variable-bitrate image compression with one VAE: the Bayesian AC image codec.

Yang, Bamler & Mandt (ICML 2020): the `vae.BLS2017VAE` posterior q(y|x) = N(mu, sigma^2)
is coded latent by latent with Bayesian arithmetic coding (`bayesian_ac.encode`,
Algorithm 1) under an *empirical prior*, at any rate penalty lambda, with the one
trained model. The same codec also writes the two scalar-quantizer baselines on
the same model and latents (`scalar_quantizers`):

  * uniform: y_hat = s * round(mu / s) for a step size s;
  * kmeans:  y_hat = the nearest of K per-channel grid points (1-D k-means, Lloyd).

and an extension of Bayesian AC (ours, not the paper's): "bayesian_ac_centroids"
writes Bayesian AC's symbols but reconstructs each latent at its symbol's
centroid, fitted on the training latents with the coding tables
(`bayesian_ac_tables.fit_centroids`), instead of at the code point F^-1(xi).

`fit_run` fits a run's coding tables (`bayesian_ac_tables`) on training images
and stores them beside the weights.

Files (`file_format.CompressedFile`, method "bayesian_ac" for all four quantizers):
`y_shape` is the latent (h, w), `z_shape` is (0, 0), `extra` is `struct.pack("<BdH",
quantizer id, parameter, table index)` with parameter = lambda, step or K, and the
one payload string is a single tfc range-coder string of all channels, channel 0
first, each channel's symbols in C order. The fingerprint covers weights and tables.

Units: bpp from real file sizes (header included), est_bpp from the symbols'
information content under the tables, PSNR in dB, MS-SSIM linear, times in seconds.
"""

import dataclasses
import glob as glob_lib
import math
import os
import struct
import time

import numpy as np
import tensorflow as tf

from tfc_inference.coding import bayesian_ac
from tfc_inference.coding import bayesian_ac_tables
from tfc_inference.coding import file_format
from tfc_inference.coding import scalar_quantizers
from tfc_inference.models import checkpoints
from tfc_inference.models import tiling
from tfc_inference.models import vae
from tfc_inference.util import image_io
from tfc_inference.util import metrics

METHOD = "bayesian_ac"  # the file_format method of every file written here


# The CSV column naming each method's setting.
PARAMETER_NAMES = {"bayesian_ac": "lambda", "bayesian_ac_centroids": "lambda",
                   "uniform": "step", "kmeans": "levels", "jpeg": "quality"}
# Quantizers whose setting is Bayesian AC's lambda.
BAYESIAN_AC_QUANTIZERS = ("bayesian_ac", "bayesian_ac_centroids")


_EXTRA = struct.Struct("<BdH")


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


def _digest_salt(quantizer):
  """Extra arrays the latents' digest covers: a centroid file's symbols are
  Bayesian AC's, so its digest also covers its quantizer id, and a header
  changed from one to the other fails the digest check instead of decoding to
  another image. (Files of the first three quantizers keep their digest.)"""
  if bayesian_ac_tables.SYMBOLS_OF.get(quantizer):
    return ([bayesian_ac_tables.QUANTIZERS[quantizer]],)
  return ()


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
  quantizer = bayesian_ac_tables.QUANTIZER_NAMES.get(quantizer_id)
  if quantizer is None or not math.isfinite(setting):
    raise file_format.FormatError("unknown quantizer or setting in the header")
  return quantizer, setting, index


class ImageCodec:
  """A loaded run: the VAE, its coding tables, its name and fingerprint."""

  def __init__(self, model, tables, run_name):
    self.model = model
    # Tile size in image pixels for analysis and synthesis (`tiling.choose_tile`:
    # None picks one from the image size, 0 never tiles).
    self.tile_pixels = None
    self.run_name = run_name
    self.fingerprint = vae.fingerprint(model.weight_arrays(), tables)
    self.tables = bayesian_ac_tables.CodingTables.from_arrays(tables, model.num_filters)
    self.num_channels = model.num_filters
    self._range_tables = {}
    self._centroid_lookups = {}

  @classmethod
  def load(cls, run, checkpoint_dir=None, name_only=False):
    model, tables, _, run_name = vae.load_run(run, checkpoint_dir, name_only)
    return cls(model, tables, run_name)

  # ---- analysis and synthesis
  def tile_for(self, image_shape):
    """The tile size (latent pixels) this codec codes an image of this shape with."""
    return tiling.choose_tile(image_shape, self.tile_pixels)

  def analyze(self, image):
    """q(y|x) of one uint8 image [H, W, 3]."""
    with self.model.tiled(self.tile_for(image.shape)):
      mu, sigma = self.model.posterior(pad_image(image))
    return Posterior(mu[0].numpy().astype(np.float64),
                     sigma[0].numpy().astype(np.float64), tuple(image.shape[:2]))

  def reconstruct(self, values, image_shape, tile=0):
    """uint8 [H, W, 3] synthesized from latent values [h, w, N] (with tiles of
    `tile` latent pixels, as the file records)."""
    with self.model.tiled(tile):
      x_hat = self.model.synthesize(tf.constant(values[None], tf.float32))[0]
    return image_io.to_uint8(x_hat[:image_shape[0], :image_shape[1]].numpy())

  # ---- quantization
  def table_index(self, quantizer, setting):
    """The table used at `setting`: nearest lambda in log; exact step / levels."""
    if quantizer not in bayesian_ac_tables.QUANTIZERS:
      raise ValueError(f"unknown quantizer {quantizer!r}")
    if quantizer == "bayesian_ac_centroids" and self.tables.centroids is None:
      raise ValueError(f"run {self.run_name} has no Bayesian AC centroids (its "
                       "coding tables predate them); add them with "
                       f"`examples/bayesian_ac.py fit {self.run_name} "
                       "--centroids_only`")
    settings = np.asarray(self.tables.settings(quantizer), np.float64)
    if quantizer in BAYESIAN_AC_QUANTIZERS:
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
    if quantizer == "bayesian_ac_centroids":
      self.table_index(quantizer, setting)  # fails before Algorithm 1 runs
      return self.with_centroids(self.quantize(posterior, "bayesian_ac", setting))
    index = self.table_index(quantizer, setting)
    if quantizer == "bayesian_ac":
      points = bayesian_ac_tables.bayesian_ac_symbols(
          self.tables.prior, posterior.mu, posterior.sigma, float(setting),
          self.tables.max_bits)
      symbols, values = points.symbols, points.values
    elif quantizer == "uniform":
      symbols, values = scalar_quantizers.uniform_quantize(
          posterior.mu, float(self.tables.settings("uniform")[index]))
    elif quantizer == "kmeans":
      symbols, values = scalar_quantizers.kmeans_quantize(
          posterior.mu, self.tables.kmeans_centers[index])
    else:
      raise ValueError(f"unknown quantizer {quantizer!r}")
    return Quantized(quantizer, float(setting), index, symbols, values)

  def with_centroids(self, quantized):
    """Bayesian AC's `quantized` as "bayesian_ac_centroids" would quantize it:
    the same symbols (Algorithm 1 is not run again), centroid values."""
    if quantized.quantizer != "bayesian_ac":
      raise ValueError(f"only bayesian_ac symbols take centroids, not "
                       f"{quantized.quantizer}")
    index = self.table_index("bayesian_ac_centroids", quantized.setting)
    values = self.centroid_lookup(index).values(quantized.symbols,
                                                quantized.values)
    return Quantized("bayesian_ac_centroids", quantized.setting, index,
                     quantized.symbols, values)

  def centroid_lookup(self, table_index):
    """The `CentroidLookup` of a Bayesian AC table, built once per codec."""
    if table_index not in self._centroid_lookups:
      self._centroid_lookups[table_index] = bayesian_ac_tables.CentroidLookup(
          self.distributions("bayesian_ac", table_index),
          self.tables.centroids[table_index])
    return self._centroid_lookups[table_index]

  def dequantize(self, quantizer, table_index, symbols):
    if quantizer == "bayesian_ac":
      return bayesian_ac.decode(symbols, self.tables.prior.quantile)
    if quantizer == "bayesian_ac_centroids":
      return self.centroid_lookup(table_index).values(
          symbols, bayesian_ac.decode(symbols, self.tables.prior.quantile))
    if quantizer == "uniform":
      step = float(self.tables.settings("uniform")[table_index])
      return scalar_quantizers.unzigzag(symbols) * step
    return scalar_quantizers.kmeans_values(
        symbols, self.tables.kmeans_centers[table_index])

  def distributions(self, quantizer, table_index):
    return self.tables.tables_of(quantizer).distributions[table_index]

  def range_tables(self, quantizer, table_index):
    """The range coder's lookup for one setting, built once per codec (building
    it quantizes every channel's CDF, which would dominate each file's time)."""
    key = (bayesian_ac_tables.SYMBOLS_OF.get(quantizer, quantizer), table_index)
    if key not in self._range_tables:
      self._range_tables[key] = bayesian_ac.RangeCodingTables(
          self.distributions(quantizer, table_index))
    return self._range_tables[key]

  # ---- files
  def encode(self, posterior, quantized):
    """File bytes of quantized latents."""
    data = bayesian_ac_tables.code_channels(quantized.symbols,
                                            self.range_tables(quantized.quantizer,
                                                              quantized.table_index))
    compressed = file_format.CompressedFile(
        method=METHOD, fingerprint=self.fingerprint, run_name=self.run_name,
        image_shape=posterior.image_shape, y_shape=quantized.symbols.shape[:2],
        z_shape=(0, 0), strings=[data],
        extra=_EXTRA.pack(bayesian_ac_tables.QUANTIZERS[quantized.quantizer],
                          quantized.setting, quantized.table_index),
        digest=file_format.latents_digest(quantized.symbols,
                                          *_digest_salt(quantized.quantizer)),
        tile=self.tile_for(posterior.image_shape))
    return compressed.to_bytes()

  def decode_latents(self, compressed, max_pixels=None):
    """(quantizer, setting, latent values [h, w, N]) of a parsed file."""
    quantizer, setting, index = check_header(compressed, max_pixels)
    file_format.check_fingerprint(compressed, self.fingerprint, self.run_name)
    if quantizer == "bayesian_ac_centroids" and self.tables.centroids is None:
      raise file_format.FormatError(
          f"run {self.run_name} has no Bayesian AC centroids for this file")
    if index >= len(self.tables.settings(quantizer)):
      raise file_format.FormatError(
          f"coding table {index} of {quantizer} is not in run {self.run_name}")
    shape = tuple(compressed.y_shape) + (self.num_channels,)
    symbols = bayesian_ac_tables.decode_channels(
        compressed.strings[0], self.range_tables(quantizer, index), shape)
    compressed.check_digest(symbols, *_digest_salt(quantizer))
    return quantizer, setting, self.dequantize(quantizer, index, symbols)

  def decode(self, data):
    """File bytes -> (uint8 image, info dict)."""
    compressed = file_format.CompressedFile.from_bytes(data)
    quantizer, setting, values = self.decode_latents(compressed)
    image = self.reconstruct(values, compressed.image_shape, compressed.tile)
    return image, dict(quantizer=quantizer, setting=setting, values=values)

  def compress(self, image, quantizer, setting, posterior=None, name=None,
               quantized=None):
    """Encodes one image, decodes the file as a receiver would, and measures it.

    `posterior` and `quantized` (what `quantize(posterior, quantizer, setting)`
    returns, e.g. from `with_centroids`) skip work a sweep has already done.
    Raises `CodingError` unless the decoded latents equal the encoded ones (so
    the decoded image equals the encoder's reconstruction). Returns (bytes,
    result dict, Quantized).
    """
    start = time.time()
    if posterior is None:
      posterior = self.analyze(image)
    if quantized is None:
      quantized = self.quantize(posterior, quantizer, setting)
    elif (quantized.quantizer, quantized.setting) != (quantizer, float(setting)):
      raise ValueError(f"quantized holds {quantized.quantizer} at "
                       f"{quantized.setting:g}, not {quantizer} at {setting:g}")
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
    bits = bayesian_ac_tables.channel_bits(
        quantized.symbols, self.distributions(quantizer, quantized.table_index))
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
        tile_pixels=self.tile_for(image.shape) * tiling.STRIDE,
        kl_bpp=float(posterior.kl_bits().sum() / pixels))
    if quantizer in BAYESIAN_AC_QUANTIZERS:
      result["lmbda"] = float(setting)
      points_bits = bayesian_ac.symbols_to_code_points(quantized.symbols)[1]
      result["code_point_bits_per_latent"] = float(np.mean(points_bits))
    return data, result, quantized


class CodingError(RuntimeError):
  """A file that does not decode to the latents that were encoded."""


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


def add_centroids_to_run(model, run_path, tables, images, config=None,
                         print_fn=None, max_rows=32768, seed=0):
  """Adds Bayesian AC centroids, fitted on `images`, to a run's coding `tables`
  (its `tables/` arrays) and writes weights + tables to `run_path`; every other
  table stays as it is. Returns the new tables dict."""
  say = print_fn or (lambda message: None)
  say(f"computing posteriors of {len(images)} images")
  mus, sigmas = posteriors(model, images)
  arrays = bayesian_ac_tables.add_centroids(tables, mus, sigmas, max_rows, seed)
  checkpoints.save_weights(model, run_path, arrays)
  if config is not None:
    config.setdefault("coding_tables", {})["centroids"] = dict(
        fit_images=len(images), max_rows=max_rows, seed=seed,
        added_to_existing_tables=True)
    checkpoints.write_config(run_path, config)
  return arrays


def fit_run(model, run_path, images, config=None, print_fn=None, **fit_kwargs):
  """Fits the coding tables on `images` and writes weights + tables to `run_path`.

  `config` (the run's config dict) gets a `coding_tables` summary and is written.
  Returns the tables dict.
  """
  say = print_fn or (lambda message: None)
  say(f"computing posteriors of {len(images)} images")
  mus, sigmas = posteriors(model, images)
  arrays, info = bayesian_ac_tables.fit_coding_tables(
      mus, sigmas, print_fn=print_fn, **fit_kwargs)
  info["fit_images"] = len(images)
  checkpoints.save_weights(model, run_path, arrays)
  if config is not None:
    config["coding_tables"] = info
    checkpoints.write_config(run_path, config)
  return arrays
