"""Iterative inference at compression time (paper sections 3.1-3.2, supplement S3).

Starting from the amortized encoder's (y, z), gradient steps (Adam) lower a relaxed
rate-distortion objective in which rounding is replaced by one of the relaxations
in `rounding`. Every `eval_every` iterations the *true* R-D loss of the rounded
latents is evaluated, and at the end the latents are rounded onto exactly the grid
the entropy model codes, ready for the range coder.

Works on a batch of same-sized images; the per-image losses are summed, and since
Adam is element-wise this equals optimizing each image on its own.
"""

import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfc_inference.inference import rounding
from tfc_inference.models import frozen
from tfc_inference.models import fused_likelihood
from tfc_inference.models import hyperprior
from tfc_inference.models import tiling
from tfc_inference.util import metrics
from tfc_inference.util import progress

METHODS = ("sga", "map", "ste", "unoise", "danneal")
DEFAULT_LR = {"sga": 5e-3, "map": 5e-3, "unoise": 5e-3, "danneal": 5e-3,
              "ste": 1e-4}
# Early stopping (keep the best rounded solution) for MAP and STE, as in S3.
KEEPS_BEST = ("map", "ste")
# Temperature schedule (tau0, c, t0) of the paper's formula per method. SGA uses
# S3's (0.5, 1e-3, 700). Deterministic annealing follows the authors' danneal
# script, tau(t) = min(0.2, exp(-4e-3 t)), which is the paper's formula with
# tau0 = 0.2, c = 4e-3 and t0 = ln(1 / 0.2) / 4e-3 = 402. DA needs the faster
# decay: its relaxed value is a deterministic convex combination of floor and ceil,
# so at SGA's final tau (0.14) the decoder still sees non-integer latents and the
# true (rounded) loss drifts away from the relaxed one: on two Kodak crops it ended
# at 2.508 with SGA's schedule, 1.928 with this one, from 2.172
# (results/iterative_inference/danneal_sga_schedule/ and summary.json there).
DEFAULT_SCHEDULE = {"sga": (0.5, 1e-3, 700), "danneal": (0.2, 4e-3, 402)}


@dataclasses.dataclass
class InferenceConfig:
  """Settings of one iterative-inference run (defaults: supplement S3)."""
  method: str = "sga"
  iterations: int = 2000
  lr: Optional[float] = None  # None: DEFAULT_LR[method]
  # None: DEFAULT_SCHEDULE of the method (SGA's for methods without one).
  tau0: Optional[float] = None
  annealing_rate: Optional[float] = None
  t0: Optional[int] = None
  schedule: str = "paper"  # or "naive"
  lmbda: Optional[float] = None  # None: the model's training lambda
  eval_every: int = 10
  keep_best: Optional[bool] = None  # None: method in KEEPS_BEST
  seed: int = 0
  # The schedule sees iteration t as t * schedule_scale, e.g. 4 with 500
  # iterations anneals as the paper's schedule does over 2000.
  schedule_scale: float = 1.0
  # Dtype of the synthesis inside the relaxed objective ("float32" or
  # "bfloat16", see `models.frozen`); the true loss and the result are float32.
  compute_dtype: str = "float32"

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
    rounding.check_optimization_settings(self.schedule, self.iterations,
                                         self.eval_every, self.schedule_scale)
    frozen.check_dtype(self.compute_dtype)
    defaults = DEFAULT_SCHEDULE.get(self.method, DEFAULT_SCHEDULE["sga"])
    for name, value in zip(("tau0", "annealing_rate", "t0"), defaults):
      if getattr(self, name) is None:
        setattr(self, name, value)

  @property
  def learning_rate(self):
    return DEFAULT_LR[self.method] if self.lr is None else self.lr

  @property
  def keeps_best(self):
    return self.method in KEEPS_BEST if self.keep_best is None else self.keep_best

  def tau(self, step):
    return rounding.schedule_value(self.schedule, step * self.schedule_scale,
                                   self.tau0, self.annealing_rate, self.t0)


@dataclasses.dataclass
class InferenceResult:
  """Output of `IterativeInference.run` for a batch of B images.

  `y_hat`, `z_hat`: latents on the coding grid. Losses are `bpp + lmbda * mse`
  per image ([B] arrays). `trajectory` rows: (iteration, true loss [B], relaxed
  loss [B] of the same iterate, or NaN where not evaluated).
  """
  y_hat: tf.Tensor
  z_hat: tf.Tensor
  init_loss: np.ndarray
  init_bpp: np.ndarray
  init_mse: np.ndarray
  loss: np.ndarray
  bpp: np.ndarray
  mse: np.ndarray
  trajectory: list
  seconds: float
  best_iteration: np.ndarray


class IterativeInference:
  """Optimizes the latents of a `RangeCodedHyperprior` for given images.

  Args:
    model: a loaded mean-scale or scale-only hyperprior (with coding tables).
    config: `InferenceConfig`.
    progress_fn: called every `progress_every` iterations with a dict (iteration,
      tau, relaxed_loss, true_loss, bpp, psnr, elapsed, eta), means over images.
  """

  def __init__(self, model, config, progress_fn: Optional[Callable] = None,
               progress_every=100):
    if not isinstance(model, hyperprior.RangeCodedHyperprior):
      raise TypeError("iterative inference needs a mbt2018 or bmshj2018 model")
    self.model = model
    self.config = config
    self.lmbda = model.lmbda if config.lmbda is None else float(config.lmbda)
    self.progress_fn = progress_fn
    self.progress_every = progress_every
    self._rounding = rounding.relaxation_layer(config.method)
    self._synthesis = self._hyper_synthesis = self._exact = None

  def freeze_transforms(self):
    """Snapshots the decoder-side transforms as raw ops (`models.frozen`), faster
    than the layers: `_exact` (synthesis, hyper-synthesis) in float32, whose
    outputs equal the layers' bit for bit, for the rates and the true loss; the
    relaxed objective's synthesis in `config.compute_dtype`. `run` calls it, so
    it sees the weights loaded at that time."""
    self._exact, self._synthesis = frozen.inference_transforms(
        self.model, self.config.compute_dtype)
    self._hyper_synthesis = self._exact[1]

  # -------------------------------------------------------------- objectives
  def _relax(self, v, tau, seed):
    return self._rounding(v, tau, seed)

  def relaxed_rate(self, y, z, tau, seed):
    """Relaxed per-image rate [B] in bits, and the relaxed latents y_tilde the
    synthesis sees."""
    model = self.model
    offset = model.z_offset
    z_tilde = self._relax(z - offset, tau, seed[0]) + offset
    loc, indexes = model.y_conditional(z_tilde, tf.shape(y)[1:3],
                                       self._hyper_synthesis)
    centered = y if loc is None else y - loc
    y_offsets = self._relax(centered, tau, seed[1])
    y_tilde = y_offsets if loc is None else y_offsets + loc
    log_p_z = model.hyperprior.log_prob(z_tilde)
    bits = -(fused_likelihood.relaxed_log_p_y(y_offsets, indexes) +
             tf.reduce_sum(log_p_z, axis=[1, 2, 3])) / np.log(2.)
    return bits, y_tilde

  def relaxed_loss(self, x, y, z, tau, seed, valid_shape):
    """Relaxed per-image loss [B] (the objective the gradient steps follow).
    `x`: the images, or a `frozen.PreparedReference` of them."""
    bits, y_tilde = self.relaxed_rate(y, z, tau, seed)
    mse, num_pixels = self.model.synthesis_mse(x, y_tilde, valid_shape,
                                               self._synthesis)
    return bits / num_pixels + self.lmbda * mse

  def quantize(self, y, z, hyper_synthesis=None):
    """Rounds continuous (y, z) onto the coding grid (`hyper_synthesis`: as in
    the model's `y_conditional`)."""
    z_hat = self.model.quantize_z(z)
    loc, _ = self.model.y_conditional(z_hat, tf.shape(y)[1:3], hyper_synthesis)
    return self.model.quantize_y(y, loc), z_hat

  def true_loss(self, x, y, z, valid_shape, transforms=None):
    """True R-D loss [B] of the rounded (y, z), its bpp and mse, and the rounded
    latents. `transforms`: as in the model's `true_rd`."""
    y_hat, z_hat = self.quantize(y, z, transforms and transforms[1])
    terms = self.model.true_rd(x, y_hat, z_hat, valid_shape, transforms)
    loss = terms["bpp"] + self.lmbda * terms["mse"]
    return loss, terms["bpp"], terms["mse"], y_hat, z_hat

  def relaxed_loss_and_gradients(self, x, y, z, tau, seed, valid_shape):
    """Relaxed per-image losses [B] and the gradients of their sum w.r.t. the
    variables `y` and `z` (one optimization step's direction).

    While the model is tiled, the distortion's gradient is accumulated tile by
    tile (`tiling.rd_gradients`): the same gradient up to float rounding.
    """
    if not self.model.tile:
      with tf.GradientTape() as tape:
        losses = self.relaxed_loss(x, y, z, tau, seed, valid_shape)
        total = tf.reduce_sum(losses)
      return losses, tape.gradient(total, [y, z])
    num_pixels = float(np.prod(valid_shape or tuple(x.shape[1:3])))
    with tf.GradientTape() as tape:
      bits, y_tilde = self.relaxed_rate(y, z, tau, seed)
      rate = bits / num_pixels  # on the tape: rd_gradients differentiates it
    return tiling.rd_gradients(
        tape, rate, y_tilde, [y, z],
        self.model.synthesis_mse_and_gradient(x, y_tilde, valid_shape,
                                              self._synthesis), self.lmbda)

  # -------------------------------------------------------------- optimization
  def run(self, x, valid_shape=None, init=None):
    """Optimizes latents for images `x` [B, H, W, 3] (padded, 0-255).

    `valid_shape` (height, width) excludes padding from the distortion. `init`:
    optional (y, z) to start from instead of the amortized encoder's output.
    """
    config = self.config
    self.freeze_transforms()
    x = tf.convert_to_tensor(x, tf.float32)
    y0, z0 = self.model.analyze(x) if init is None else init
    y_var = tf.Variable(y0, name="y")
    z_var = tf.Variable(z0, name="z")
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)
    valid = None if valid_shape is None else tuple(int(s) for s in valid_shape)
    # What the relaxed distortion reads of x, computed once for all iterations.
    reference = (x if self.model.tile else
                 frozen.prepare_reference(self._synthesis, x))

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32),
                                  tf.TensorSpec([2, 2], tf.int32)])
    def step(tau, seed):
      losses, gradients = self.relaxed_loss_and_gradients(
          reference, y_var, z_var, tau, seed, valid)
      optimizer.apply_gradients(zip(gradients, [y_var, z_var]))
      return losses

    @tf.function
    def evaluate():
      return self.true_loss(x, y_var, z_var, valid, self._exact)

    start = time.time()
    clock = progress.Eta(config.iterations)
    init_loss, init_bpp, init_mse, best_y, best_z = (
        t.numpy() for t in evaluate())
    best_loss, best_iteration = init_loss.copy(), np.zeros_like(init_loss, int)
    final = (init_loss, init_bpp, init_mse)
    batch = init_loss.shape[0]
    trajectory = []
    last_true = init_loss
    for t in range(config.iterations + 1):
      evaluate_now = t % config.eval_every == 0 or t == config.iterations
      if evaluate_now and t > 0:
        loss, bpp, mse, y_hat, z_hat = (v.numpy() for v in evaluate())
        last_true = loss
        final = (loss, bpp, mse)
        better = loss < best_loss
        best_loss = np.where(better, loss, best_loss)
        best_iteration = np.where(better, t, best_iteration)
        best_y = np.where(better[:, None, None, None], y_hat, best_y)
        best_z = np.where(better[:, None, None, None], z_hat, best_z)
      if t == config.iterations:
        trajectory.append((t, last_true.tolist(), [float("nan")] * batch))
        break
      tau = config.tau(t)
      seed = tf.constant([[config.seed, 2 * t], [config.seed, 2 * t + 1]],
                         tf.int32)
      relaxed = step(tf.constant(tau, tf.float32), seed).numpy()
      eta = clock.update(t + 1)
      if evaluate_now:
        true_now = init_loss if t == 0 else last_true
        trajectory.append((t, true_now.tolist(), relaxed.tolist()))
      if self.progress_fn and (t % self.progress_every == 0):
        self.progress_fn(dict(
            iteration=t, tau=tau, relaxed_loss=float(relaxed.mean()),
            true_loss=float(last_true.mean()), bpp=float(final[1].mean()),
            psnr=float(metrics.psnr_from_mse(final[2]).mean()),
            elapsed=clock.elapsed(), eta=eta))
    if config.keeps_best:
      y_hat, z_hat = best_y, best_z
    else:
      y_hat, z_hat = (v.numpy() for v in self.quantize(y_var, z_var))
      best_iteration = np.full(batch, config.iterations)
    # The reported terms come from the layers themselves, as the decoder runs them.
    terms = self.model.true_rd(x, tf.constant(y_hat), tf.constant(z_hat), valid)
    bpp_mse = (terms["bpp"].numpy(), terms["mse"].numpy())
    loss = bpp_mse[0] + self.lmbda * bpp_mse[1]
    return InferenceResult(
        y_hat=tf.constant(y_hat), z_hat=tf.constant(z_hat), init_loss=init_loss,
        init_bpp=init_bpp, init_mse=init_mse, loss=np.asarray(loss),
        bpp=bpp_mse[0], mse=bpp_mse[1], trajectory=trajectory,
        seconds=time.time() - start, best_iteration=best_iteration)
