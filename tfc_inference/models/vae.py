"""The VAE of Bayesian arithmetic coding (Yang, Bamler & Mandt, ICML 2020).

The transforms are those of Ballé, Laparra & Simoncelli (ICLR 2017), "bls2017":

  analysis   x [B, H, W, 3] in [0, 255] -> /255 -> 9x9/4 N, GDN -> 5x5/2 N, GDN
             -> 5x5/2 2N, split into the mean mu and log-std of q(y|x) [B, H/16, W/16, N]
  synthesis  y [B, h, w, N] -> 5x5 up2 N, IGDN -> 5x5 up2 N, IGDN -> 9x9 up4 3 -> *255

The model is a plain (beta-)VAE: Gaussian posterior q(y|x) = N(mu, sigma^2), standard
normal prior p(y) = N(0, 1), Gaussian likelihood p(x|y) = N(g(y), sigma2_x) on
[0, 1] pixels with a fixed variance `sigma2` (the paper: 0.001). Training minimizes
the NELBO with a reparameterized sample of y and the analytic KL. No quantization is
involved in training: one trained model serves every rate, chosen at compression time
by Bayesian AC's lambda (see `bayesian_ac_image`).

Units (`relaxed_rd`): `bpp` is the KL in bits per pixel (the rate the model's ELBO
charges), `mse` is on 0-255 pixels, `loss` is the NELBO in bits per pixel up to the
constant 1.5 log2(2 pi sigma2) of the likelihood's normalization.

Run directories hold `config.json` and `weights.npz` like the hyperprior runs (see
`checkpoints`); the coding tables (empirical prior, symbol distributions, ...) are
stored under `tables/` in `weights.npz`. The family is not in `models.MODEL_CLASSES`,
so runs are loaded with `vae.load_run`.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.models import checkpoints
from tfc_inference.models import frozen
from tfc_inference.models import tiling
from tfc_inference.models import transforms
from tfc_inference.models.weights import NamedWeightsMixin

PREFIX = "bls2017_vae"
# Total downsampling of the analysis transform: images are padded to multiples of it.
SIZE_MULTIPLE = 16
DEFAULT_SIGMA2 = 0.001
# Bounds of the predicted log-std of q(y|x); keep exp() and the KL finite.
LOG_SIGMA_MIN = -20.
LOG_SIGMA_MAX = 5.


_conv = transforms.signal_conv


class VAEAnalysisTransform(transforms.LayerStack):
  """x [B, H, W, 3] in [0, 255] -> [B, H/16, W/16, 2N]: (mu, log sigma) of q(y|x)."""

  def __init__(self, num_filters, name="analysis"):
    super().__init__(name=name)
    self.add(tf.keras.layers.Lambda(lambda x: x / 255.))
    self.add(_conv(num_filters, 9, "layer_0", down=4,
                   activation=tfc.GDN(name="gdn_0")))
    self.add(_conv(num_filters, 5, "layer_1", down=2,
                   activation=tfc.GDN(name="gdn_1")))
    self.add(_conv(2 * num_filters, 5, "layer_2", down=2))


class VAESynthesisTransform(transforms.LayerStack):
  """y [B, h, w, N] -> x_hat [B, 16h, 16w, 3] on the 0-255 scale (unclipped)."""

  def __init__(self, num_filters, name="synthesis"):
    super().__init__(name=name)
    self.add(_conv(num_filters, 5, "layer_0", up=2,
                   activation=tfc.GDN(name="igdn_0", inverse=True)))
    self.add(_conv(num_filters, 5, "layer_1", up=2,
                   activation=tfc.GDN(name="igdn_1", inverse=True)))
    self.add(_conv(3, 9, "layer_2", up=4))
    self.add(tf.keras.layers.Lambda(lambda x: x * 255.))


def kl_standard_normal(mu, sigma):
  """KL(N(mu, sigma^2) || N(0, 1)) in nats, elementwise."""
  return .5 * (tf.square(mu) + tf.square(sigma) - 1.) - tf.math.log(sigma)


class BLS2017VAE(NamedWeightsMixin, tiling.TiledTransformsMixin, tf.keras.Model):
  """bls2017 transforms trained as a VAE with a standard normal prior.

  Attributes:
    num_filters: N, channels of the hidden layers and of the latents y.
    sigma2: variance of the Gaussian likelihood on [0, 1] pixels.
  """

  name_prefix = PREFIX
  _PARTS = ("analysis_transform", "synthesis_transform")

  def __init__(self, num_filters=64, sigma2=DEFAULT_SIGMA2, **kwargs):
    super().__init__(**kwargs)
    self.num_filters = int(num_filters)
    self.sigma2 = float(sigma2)
    if not self.sigma2 > 0:
      raise ValueError(f"sigma2 must be positive, got {sigma2}")
    self.analysis_transform = VAEAnalysisTransform(self.num_filters)
    self.synthesis_transform = VAESynthesisTransform(self.num_filters)

  def build_all(self):
    """Creates every variable without running the model (see
    `transforms.LayerStack`)."""
    self.analysis_transform.build_stack([None, None, None, 3])
    self.synthesis_transform.build_stack([None, None, None, self.num_filters])
    self.built = True

  # ---------------------------------------------------------------- weights
  def posterior(self, x):
    """q(y|x) of images x (float32 [B, H, W, 3], H, W multiples of 16): (mu, sigma)
    (tile by tile inside `tiled`)."""
    params = self.run_analysis(x)
    mu, log_sigma = tf.split(params, 2, axis=-1)
    log_sigma = tf.clip_by_value(log_sigma, LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    return mu, tf.exp(log_sigma)

  def synthesize(self, y):
    """Reconstruction in [0, 255] (clipped, not rounded), full padded size (tile
    by tile inside `tiled`)."""
    return tf.clip_by_value(
        self.run_synthesis(y, frozen.snapshot(self.synthesis_transform)), 0., 255.)

  # ---------------------------------------------------------------- training
  def relaxed_rd(self, x, training=True):
    """NELBO terms (scalars): loss and bpp in bits per pixel, mse on 0-255.

    With `training`, y is a reparameterized sample of q(y|x); otherwise y = mu.
    """
    mu, sigma = self.posterior(x)
    y = mu + sigma * tf.random.normal(tf.shape(mu)) if training else mu
    x_tilde = self.synthesis_transform(y)
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    bpp = tf.reduce_sum(kl_standard_normal(mu, sigma)) / num_pixels / np.log(2.)
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_tilde))
    # -log p(x|y) per pixel: 3 colour channels of (x/255 - x_tilde/255)^2 / (2 s2).
    distortion_bits = 3. * mse / (255. ** 2 * 2. * self.sigma2 * np.log(2.))
    return dict(loss=bpp + distortion_bits, bpp=bpp, mse=mse)

  def call(self, x, training=False):
    return self.relaxed_rd(x, training=training)


def run_name(num_filters, sigma2=DEFAULT_SIGMA2):
  """E.g. `bls2017_vae-num_filters=64-sigma2=0.001`."""
  return f"{PREFIX}-num_filters={int(num_filters)}-sigma2={float(sigma2):g}"


def build_model(config):
  """A built (randomly initialized) model for a run's config dict."""
  if config.get("model") != PREFIX:
    raise checkpoints.CheckpointError(
        f"run is a {config.get('model')!r} model; this needs a {PREFIX} run")
  model = BLS2017VAE(num_filters=config["num_filters"],
                     sigma2=config.get("sigma2", DEFAULT_SIGMA2))
  model.build_all()
  return model


def fingerprint(weights, tables):
  """8-byte digest of the weights *and* the coding tables (files record it)."""
  digest = hashlib.sha256()
  for group, arrays in (("weights/", weights), ("tables/", tables)):
    for key in sorted(arrays):
      value = np.asarray(arrays[key])
      digest.update((group + key).encode())
      digest.update(str(value.dtype.str).encode() + str(value.shape).encode())
      digest.update(np.ascontiguousarray(value).tobytes())
  return digest.digest()[:8]


def load_run(run, checkpoint_dir=None, name_only=False):
  """Loads a bls2017_vae run: returns (model, tables, config, run_name).

  `run` is a run name in `checkpoint_dir` (default: `checkpoints.default_checkpoint_dir`)
  or a path to a run directory (not with `name_only`, for names read from files).
  `tables` is the dict of `tables/...` arrays of
  `weights.npz` (empty if the coding tables have not been fitted yet).
  """
  path = checkpoints.run_dir(run, checkpoint_dir, name_only)
  checkpoints.check_run_name(os.path.basename(os.path.normpath(path)))
  config = checkpoints.read_config(path)
  model = build_model(config)
  weights, tables = checkpoints.load_arrays(path)
  model.set_weight_arrays(weights)
  return model, tables, config, os.path.basename(os.path.normpath(path))
