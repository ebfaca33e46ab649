"""The three hyperprior models: mean-scale (M3), its bits-back variant, and scale-only (M6).

Shapes: images `x` are float32 `[B, H, W, 3]` in [0, 255] with H, W multiples of 64;
latents `y` are `[B, H/16, W/16, M]`; hyper-latents `z` are `[B, H/64, W/64, N]`
(N = num_filters, M = num_latents, N by default).
Rates are in bits, distortion is the mean squared error on 0-255 pixels, and the
training loss is `bpp + lmbda * mse` (tfc's `bmshj2018` convention).

Quantization grids (what the range coder codes, and so what every inference method in
this package must round to):
  * `y` of the mean-scale model: `round(y - loc) + loc`, `loc` = predicted mean.
  * `y` of the scale-only and bits-back models: the integers.
  * `z` of the mean-scale and scale-only models: `round(z - o) + o` with the
    per-channel quantization offset `o` of the z entropy model (saved with the weights).
  * `z` of the bits-back model is continuous; it is coded on a fine grid by `bits_back`.
"""

import hashlib

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc
import tensorflow_probability as tfp

from tfc_inference.models import factorized
from tfc_inference.models import frozen
from tfc_inference.models import fused_likelihood
from tfc_inference.models import scale_table
from tfc_inference.models import tiling
from tfc_inference.models import transforms
from tfc_inference.models import weights

tfd = tfp.distributions

# The bits-back model codes z on a grid of width 2**-Z_GRID_BITS (1/32), spanning
# all but Z_TAIL_MASS of the prior in each tail.
Z_GRID_BITS = 5
Z_TAIL_MASS = 1e-7


def masked_mse(x, x_hat, valid_shape=None):
  """Per-image MSE over the valid (unpadded) region, and that region's pixel count."""
  return masked_mean_square(x_hat - x, valid_shape)


def masked_mean_square(error, valid_shape=None):
  """Per-image mean of `error` [B, H, W, C] squared over the valid (unpadded)
  region, and that region's pixel count."""
  if valid_shape is not None:
    error = error[:, :valid_shape[0], :valid_shape[1], :]
  mse = tf.reduce_mean(tf.square(error), axis=[1, 2, 3])
  num_pixels = tf.cast(tf.reduce_prod(tf.shape(error)[1:3]), tf.float32)
  return mse, num_pixels


def straight_through(y, y_hat):
  """`y_hat` in the forward pass, the identity's gradient w.r.t. `y` backward."""
  return y + tf.stop_gradient(y_hat - y)


class HyperpriorModel(weights.NamedWeightsMixin, tiling.TiledTransformsMixin,
                      tf.keras.Model):
  """Common training and coding logic. Subclasses define the hyper-latent path.

  Attributes:
    name_prefix: the run-directory prefix of this model family (e.g. "mbt2018").
    lmbda: rate-distortion trade-off of the training loss.
    num_filters: channels of every hidden layer and of z (N).
    num_latents: channels of y (M; default N). The bottleneck: at N = M = 64, y
      holds a quarter of a value per pixel, which caps the quality the transforms
      reach at high rates (Minnen et al. use M = 320 there).
    train_synthesis_input: what the synthesis reconstructs from in a training
      step: "noisy" (y plus uniform noise, as tfc trains) or "rounded" (the y_hat
      the decoder gets, with a straight-through gradient, so the decoder learns
      the latents it will decode; the rate term stays on the noisy y).
  """

  name_prefix = None
  hyper_analysis_input_abs = False
  y_grid_uses_loc = False

  def __init__(self, lmbda, num_filters, num_latents=None,
               train_synthesis_input="noisy", **kwargs):
    super().__init__(**kwargs)
    if train_synthesis_input not in ("noisy", "rounded"):
      raise ValueError("train_synthesis_input must be 'noisy' or 'rounded', not "
                       f"{train_synthesis_input!r}")
    self.train_synthesis_input = train_synthesis_input
    self.lmbda = float(lmbda)
    self.num_filters = int(num_filters)
    self.num_latents = int(num_latents or num_filters)
    self.analysis_transform = transforms.AnalysisTransform(
        num_filters, self.num_latents)
    self.synthesis_transform = transforms.SynthesisTransform(num_filters)
    self.y_entropy_model = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, scale_table.SCALES_LEVELS, scale_table.scale_fn,
        coding_rank=3, compression=False)
    self._z_offset = None
    self._coders = None

  # ---------------------------------------------------------------- building
  def build_all(self, initialize=True):
    """Creates every variable without running the model (see
    `transforms.LayerStack`: a forward pass here was most of a cold start).
    `initialize=False`: leave the kernels at zero, for weights about to be loaded."""
    m = self.num_latents
    shapes = {"analysis_transform": 3, "synthesis_transform": m,
              "hyper_analysis_transform": m,
              "hyper_synthesis_transform": self.num_filters}
    for part, channels in shapes.items():
      getattr(self, part).build_stack([None, None, None, channels], initialize)
    self.built = True

  _PARTS = ("analysis_transform", "synthesis_transform",
            "hyper_analysis_transform", "hyper_synthesis_transform", "hyperprior")

  def _on_weights_loaded(self):
    self._coders = None

  def fingerprint(self):
    """8-byte digest of the weights: files record it; decoding checks it."""
    digest = hashlib.sha256()
    for key, value in sorted(self.weight_arrays().items()):
      digest.update(key.encode())
      digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
    return digest.digest()[:8]

  # ---------------------------------------------------------------- training
  def hyper_analysis_input(self, y):
    return tf.abs(y) if self.hyper_analysis_input_abs else y

  def relaxed_rd(self, x, training=True):
    """Noisy-relaxation R-D terms used for training. Returns dict of scalars."""
    raise NotImplementedError

  def relaxed_y(self, y, indexes, loc=None, training=True):
    """(y relaxed, its bits per image [B]) under p(y | z) of scale `indexes` and
    means `loc`: in training y plus uniform noise, its rate compiled by XLA
    (`fused_likelihood.training_rate`, the rate tfc's entropy model computes);
    else y rounded by the entropy model, as tfc does."""
    if training:
      return fused_likelihood.training_rate(y, indexes, loc)
    return self.y_entropy_model(y, indexes, loc=loc, training=False)

  def call(self, x, training=False):
    return self.relaxed_rd(x, training=training)

  def _finish_rd(self, x, x_tilde, bits):
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    bpp = tf.reduce_sum(bits) / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_tilde))
    return dict(loss=bpp + self.lmbda * mse, bpp=bpp, mse=mse)

  def train_step(self, x):
    with tf.GradientTape() as tape:
      terms = self.relaxed_rd(x, training=True)
    variables = self.trainable_variables
    gradients = tape.gradient(terms["loss"], variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return terms

  # ---------------------------------------------------------------- coding
  def y_conditional(self, z_hat, y_shape, hyper_synthesis=None):
    """Parameters of p(y | z_hat): (loc or None, float scale indexes), cropped to
    `y_shape` (h, w). `hyper_synthesis`: a stand-in for the hyper-synthesis
    transform, e.g. its `frozen.FrozenTransform`."""
    transform = hyper_synthesis or self.hyper_synthesis_transform
    params = transform(z_hat)[:, :y_shape[0], :y_shape[1], :]
    return self._split_conditional(params)

  def coding_conditional(self, z_hat, y_shape):
    """`y_conditional` for coding: through the hyper-synthesis' cached float32
    snapshot (`frozen.snapshot`, the same numbers bit for bit), not the layers,
    which rebuild their kernels on every call. No gradient w.r.t. the weights."""
    return self.y_conditional(z_hat, y_shape,
                              frozen.snapshot(self.hyper_synthesis_transform))

  def _split_conditional(self, params):
    """(loc or None, scale indexes) from the hyper-synthesis output."""
    raise NotImplementedError

  def synthesize(self, y_hat, synthesis=None):
    """Reconstruction `x_hat` in [0, 255] (clipped, not rounded), full padded size
    (tile by tile inside `tiled`). `synthesis`: as in `synthesis_mse`."""
    synthesis = synthesis or frozen.snapshot(self.synthesis_transform)
    return tf.clip_by_value(self.run_synthesis(y_hat, synthesis), 0., 255.)

  def synthesis_mse(self, x, y, valid_shape=None, synthesis=None):
    """Per-image MSE [B] of the unclipped synthesis of `y` against `x` over the
    valid region, and that region's pixel count. Inside `tiled` the forward pass
    runs tile by tile, but a gradient through it would keep every tile's
    activations: take gradients with `synthesis_mse_and_gradient`.
    `synthesis`: a stand-in for the synthesis transform (e.g. its
    `frozen.FrozenTransform` in bfloat16, whose `residual` computes the error).
    `x` may be a `frozen.PreparedReference` of the image."""
    if not self.tile:
      return masked_mean_square(frozen.reconstruction_error(
          synthesis or self.synthesis_transform, y, x), valid_shape)
    return masked_mse(frozen.image_of(x), self.run_synthesis(y, synthesis),
                      valid_shape)

  def synthesis_mse_and_gradient(self, x, y, valid_shape=None, synthesis=None):
    """(MSE [B], d MSE / d y) of the unclipped synthesis, tile by tile
    (`tiling.mse_and_gradient`; one tile outside `tiled`)."""
    return tiling.mse_and_gradient(synthesis or self.synthesis_transform,
                                   frozen.image_of(x), y, self.tile, valid_shape)


class RangeCodedHyperprior(HyperpriorModel):
  """A hyperprior model whose y and z are coded with tfc's range coder.

  `z` is coded by a `ContinuousBatchedEntropyModel(NoisyDeepFactorized)`, `y` by a
  `LocationScaleIndexedEntropyModel(NoisyNormal)`. The range-coding tables are built
  once (`coding_tables`) and saved beside the weights, so loading a checkpoint skips
  the expensive table construction.
  """

  def __init__(self, lmbda, num_filters, num_latents=None, **kwargs):
    super().__init__(lmbda, num_filters, num_latents, **kwargs)
    self.hyper_analysis_transform = transforms.HyperAnalysisTransform(num_filters)
    self.hyperprior = factorized.NoisyDeepFactorized(batch_shape=[num_filters])
    self.z_train_model = tfc.ContinuousBatchedEntropyModel(
        self.hyperprior, coding_rank=3, compression=False)

  def relaxed_rd(self, x, training=True):
    y = self.analysis_transform(x)
    z = self.hyper_analysis_transform(self.hyper_analysis_input(y))
    z_tilde, bits_z = self.z_train_model(z, training=training)
    loc, indexes = self._split_conditional(self.hyper_synthesis_transform(z_tilde))
    y_tilde, bits_y = self.relaxed_y(y, indexes, loc, training)
    if training and self.train_synthesis_input == "rounded":
      y_tilde = straight_through(y, self.quantize_y(y, loc))
    x_tilde = self.synthesis_transform(y_tilde)
    return self._finish_rd(x, x_tilde, bits_y + bits_z)

  # ---- quantization grids
  @property
  def z_offset(self):
    """Per-channel quantization offset of z, float32 [N]."""
    if self._z_offset is None:
      raise RuntimeError("Call load_coding_tables() or coding_tables() first.")
    return self._z_offset

  def quantize_z(self, z):
    return tf.round(z - self.z_offset) + self.z_offset

  def quantize_y(self, y, loc):
    return tf.round(y) if loc is None else tf.round(y - loc) + loc

  def coded_symbols(self, y_hat, z_hat):
    """The integers the range coder codes for quantized latents [B, ...]:
    (z_hat - z_offset, y_hat - loc) as int64 numpy arrays (loc = 0 without it)."""
    loc, _ = self.coding_conditional(z_hat, tf.shape(y_hat)[1:3])
    y_offset = loc if self.y_grid_uses_loc else 0.
    z = np.round((z_hat - self.z_offset).numpy()).astype(np.int64)
    y = np.round((y_hat - y_offset).numpy()).astype(np.int64)
    return z, y

  def analyze(self, x):
    """Amortized inference: continuous (y, z) for images x."""
    y = self.run_analysis(x, frozen.snapshot(self.analysis_transform))
    z = frozen.snapshot(self.hyper_analysis_transform)(
        self.hyper_analysis_input(y))
    return y, z

  def true_bits(self, y_hat, z_hat, hyper_synthesis=None):
    """Bits per image [B] of already-quantized latents: the rate the range coder
    approaches (no synthesis). `hyper_synthesis`: as in `y_conditional`."""
    rate_model = tfc.ContinuousBatchedEntropyModel(
        self.hyperprior, coding_rank=3, compression=False,
        quantization_offset=self.z_offset)
    _, bits_z = rate_model(z_hat, training=False)
    y_shape = tf.shape(y_hat)[1:3]
    loc, indexes = self.y_conditional(
        z_hat, y_shape,
        hyper_synthesis or frozen.snapshot(self.hyper_synthesis_transform))
    _, bits_y = self.y_entropy_model(
        y_hat, scale_table.coding_indexes(indexes), loc=loc, training=False)
    return bits_y + bits_z

  def true_rd(self, x, y_hat, z_hat, valid_shape=None, transforms=None):
    """Exact R-D terms of already-quantized latents (what the file will cost).

    `valid_shape` (height, width) excludes the padding from distortion and pixel
    count. Returns per-image dict: `bits` [B] (rate the range coder approaches),
    `mse` [B], `loss` [B] = bpp + lmbda * mse, `bpp` [B], and `x_hat` (padded).
    `transforms`: optional (synthesis, hyper-synthesis) stand-ins computing what
    the layers compute, e.g. their float32 `frozen.FrozenTransform`s.
    """
    synthesis, hyper_synthesis = transforms or (None, None)
    bits = self.true_bits(y_hat, z_hat, hyper_synthesis)
    x_hat = self.synthesize(y_hat, synthesis)
    mse, num_pixels = masked_mse(x, x_hat, valid_shape)
    bpp = bits / num_pixels
    return dict(bits=bits, bpp=bpp, mse=mse, loss=bpp + self.lmbda * mse,
                x_hat=x_hat)

  # ---- range coding tables
  def coding_tables(self):
    """Builds the range-coding tables from the current weights (slow, once)."""
    z_coder = tfc.ContinuousBatchedEntropyModel(
        self.hyperprior, coding_rank=3, compression=True, stateless=True)
    y_coder = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, scale_table.SCALES_LEVELS, scale_table.scale_fn,
        coding_rank=3, compression=True, stateless=True)
    offset = z_coder.quantization_offset
    offset = (np.zeros([self.num_filters], np.float32) if offset is None
              else np.broadcast_to(offset.numpy(), [self.num_filters]))
    return {
        "z_cdf": z_coder.cdf.numpy(), "z_cdf_offset": z_coder.cdf_offset.numpy(),
        "z_quantization_offset": offset.astype(np.float32),
        "y_cdf": y_coder.cdf.numpy(), "y_cdf_offset": y_coder.cdf_offset.numpy(),
    }

  def load_coding_tables(self, tables):
    """Creates the compression-mode entropy models from saved tables (fast)."""
    self._z_offset = tf.constant(tables["z_quantization_offset"], tf.float32)
    z_coder = tfc.ContinuousBatchedEntropyModel(
        coding_rank=3, compression=True, stateless=True,
        prior_shape=[self.num_filters], cdf=tables["z_cdf"],
        cdf_offset=tables["z_cdf_offset"], quantization_offset=self._z_offset,
        bottleneck_dtype=tf.float32)
    # tfc's indexed model always rebuilds its tables from the prior; the tables
    # for 64 Gaussian scales depend on no weight, but we still install the saved
    # ones so encoder and decoder provably share them.
    y_coder = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, scale_table.SCALES_LEVELS, scale_table.scale_fn,
        coding_rank=3, compression=False)
    y_coder._compression = True  # pylint: disable=protected-access
    y_coder._stateless = True  # pylint: disable=protected-access
    y_coder._init_compression(  # pylint: disable=protected-access
        tables["y_cdf"], tables["y_cdf_offset"], None)
    self._coders = (z_coder, y_coder)

  def _require_coders(self):
    if self._coders is None:
      self.load_coding_tables(self.coding_tables())
    return self._coders

  def compress_latents(self, y_hat, z_hat):
    """Range codes quantized latents of a batch. Returns (z_strings, y_strings) [B]."""
    z_coder, y_coder = self._require_coders()
    loc, indexes = self.coding_conditional(z_hat, tf.shape(y_hat)[1:3])
    z_strings = z_coder.compress(z_hat)
    y_strings = y_coder.compress(y_hat, scale_table.coding_indexes(indexes),
                                 loc=loc)
    return z_strings, y_strings

  def decompress_latents(self, z_strings, y_strings, y_shape, z_shape):
    """Inverse of `compress_latents`; shapes are the spatial (h, w) of y and z."""
    z_coder, y_coder = self._require_coders()
    z_hat = z_coder.decompress(z_strings, z_shape)
    loc, indexes = self.coding_conditional(z_hat, y_shape)
    y_hat = y_coder.decompress(y_strings, scale_table.coding_indexes(indexes),
                               loc=loc)
    return y_hat, z_hat


class MeanScaleHyperprior(RangeCodedHyperprior):
  """Minnen et al. 2018 without context model: the paper's Base Hyperprior [M3]."""

  name_prefix = "mbt2018"
  y_grid_uses_loc = True

  def __init__(self, lmbda=0.01, num_filters=192, num_latents=None, **kwargs):
    super().__init__(lmbda, num_filters, num_latents, **kwargs)
    self.hyper_synthesis_transform = transforms.HyperSynthesisTransform(
        num_filters, 2 * self.num_latents)

  def _split_conditional(self, params):
    loc, indexes = tf.split(params, 2, axis=-1)
    return loc, indexes


class ScaleHyperprior(RangeCodedHyperprior):
  """tfc's bmshj2018 scale hyperprior (Ballé et al. 2018), the tfc baseline [M6]."""

  name_prefix = "bmshj2018"
  hyper_analysis_input_abs = True

  def __init__(self, lmbda=0.01, num_filters=192, num_latents=None, **kwargs):
    super().__init__(lmbda, num_filters, num_latents, **kwargs)
    self.hyper_synthesis_transform = transforms.HyperSynthesisTransform(
        num_filters, self.num_latents)

  def _split_conditional(self, params):
    return None, params


def z_grid_tables(model, grid_bits=Z_GRID_BITS):
  """Discretized prior P(z) on the z grid: dict of arrays to save with the weights.

  `bb_z_probs` [N, K] float64 holds P(z = (kmin + j) * delta) per channel.
  """
  delta = 2. ** -grid_bits
  prior = model.hyperprior
  lower = tfc.lower_tail(prior, Z_TAIL_MASS).numpy()
  upper = tfc.upper_tail(prior, Z_TAIL_MASS).numpy()
  kmin = int(np.floor(lower.min() / delta)) - 1
  kmax = int(np.ceil(upper.max() / delta)) + 1
  grid = np.arange(kmin, kmax + 1, dtype=np.float64) * delta
  edges = np.concatenate([grid - delta / 2, grid[-1:] + delta / 2])
  edges_tf = tf.constant(np.repeat(edges[:, None], model.num_filters, 1), tf.float32)
  cdf = prior.cdf(edges_tf).numpy().astype(np.float64)  # [K + 1, N]
  probs = np.maximum(np.diff(cdf, axis=0).T, 0.)
  return {"bb_z_probs": probs, "bb_z_kmin": np.array(kmin, np.int32),
          "bb_grid_bits": np.array(grid_bits, np.int32)}



class BitsBackHyperprior(HyperpriorModel):
  """Mean-scale hyperprior with a Gaussian q(z|x) for lossy bits-back coding.

  The hyper-analysis outputs the mean and log-variance of q(z|x); p(z) is a flexible
  `tfc.DeepFactorized` density (not convolved with a uniform). Training minimizes the
  NELBO whose rate term is `-log p(z) - log p(y~|z) + log q(z|x)` (net bits after
  bits back) with z sampled from q by reparameterization. y is discretized on the
  integer grid so that q(z | y_hat) can be recomputed by the decoder.
  """

  name_prefix = "mbt2018_bb"

  def __init__(self, lmbda=0.01, num_filters=192, num_latents=None, **kwargs):
    super().__init__(lmbda, num_filters, num_latents, **kwargs)
    self.hyper_analysis_transform = transforms.HyperAnalysisTransform(
        num_filters, out_channels=2 * num_filters)
    self.hyper_synthesis_transform = transforms.HyperSynthesisTransform(
        num_filters, 2 * self.num_latents)
    self.hyperprior = factorized.DeepFactorized(batch_shape=[num_filters])

  def coding_tables(self):
    """The discretized prior P(z) on the bits-back grid (see `coding.bits_back`)."""
    return z_grid_tables(self)

  def load_coding_tables(self, tables):
    self.tables = dict(tables)

  def analyze(self, x):
    """Amortized inference: y and the parameters (mean, log-variance) of q(z|x)."""
    y = self.run_analysis(x, frozen.snapshot(self.analysis_transform))
    return y, self.posterior_z(
        y, frozen.snapshot(self.hyper_analysis_transform))

  def posterior_z(self, y, hyper_analysis=None):
    """q(z | y): returns (mean, log-variance), each [B, h/4, w/4, N].
    `hyper_analysis`: a stand-in for the hyper-analysis transform."""
    params = (hyper_analysis or self.hyper_analysis_transform)(y)
    mean, log_var = tf.split(params, 2, axis=-1)
    return mean, tf.clip_by_value(log_var, -20., 10.)

  def _split_conditional(self, params):
    loc, indexes = tf.split(params, 2, axis=-1)
    return loc, indexes

  def z_net_bits(self, z, mean, log_var):
    """log q(z) - log p(z) in bits, summed per image: the net cost of z."""
    q = tfd.Normal(mean, tf.exp(0.5 * log_var))
    log_ratio = q.log_prob(z) - self.hyperprior.log_prob(z)
    return tf.reduce_sum(log_ratio, axis=[1, 2, 3]) / np.log(2.)

  def relaxed_rd(self, x, training=True):
    y = self.analysis_transform(x)
    mean, log_var = self.posterior_z(y)
    z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))
    bits_z = self.z_net_bits(z, mean, log_var)
    loc, indexes = self.y_conditional(z, tf.shape(y)[1:3])
    y_tilde, bits_y = self.relaxed_y(y, indexes, loc, training)
    if training and self.train_synthesis_input == "rounded":
      y_tilde = straight_through(y, tf.round(y))  # bits-back codes y on the integers
    x_tilde = self.synthesis_transform(y_tilde)
    return self._finish_rd(x, x_tilde, bits_y + bits_z)


MODEL_CLASSES = {
    cls.name_prefix: cls
    for cls in (MeanScaleHyperprior, BitsBackHyperprior, ScaleHyperprior)
}


def run_name(prefix, num_filters, lmbda, num_latents=None):
  """The authors' run-directory naming, e.g. `mbt2018-num_filters=64-lmbda=0.01`;
  a wider y adds its width: `mbt2018-num_filters=64-num_latents=192-lmbda=0.04`."""
  latents = (f"-num_latents={num_latents}"
             if num_latents and num_latents != num_filters else "")
  return f"{prefix}-num_filters={num_filters}{latents}-lmbda={lmbda:g}"
