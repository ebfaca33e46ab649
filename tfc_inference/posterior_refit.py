"""Refitting a bits-back model's amortized posterior to the decoder's rounded y.

Training (`BitsBackHyperprior.relaxed_rd`) computes q(z | y) from the continuous
y, but a bits-back decoder has only y_hat = round(y), so coding computes
q(z | y_hat). At low rates most of y_hat is zero, an input the hyper-analysis
never saw in training: on Kodak the lambda = 0.001 run coded at 0.221 net bpp
with q(z | y_hat), more than twice the mean-scale run's 0.104 bpp.

This stage fits the hyper-analysis alone to the rate that coding pays. The
analysis and synthesis transforms, the hyper-synthesis and p(z) stay fixed, so
y_hat, the distortion and the z coding tables do not change; only the net rate

    E_q[-log2 P(y_hat | z) - log2 p(z) + log2 q(z | y_hat)]

(`bbvi.net_bits`, the objective reproducible BBVI minimizes for one image) is
minimized, averaged over the rounded latents of training crops: amortized BBVI
on exactly the inputs the decoder sees. Files need no change: the decoder
recomputes q(z | y_hat) with the refitted hyper-analysis.
"""

import numpy as np
import tensorflow as tf

from tfc_inference.inference import bbvi
from tfc_inference.models import rdft
from tfc_inference.util import progress


def rounded_latents(model, dataset, num_crops):
  """y_hat = round(analysis(x)) of the first `num_crops` crops of `dataset`
  (batches of float32 images [B, p, p, 3] in 0..255). Returns float32 numpy
  [num_crops, p/16, p/16, M] (integers)."""
  analysis = tf.function(lambda x: tf.round(model.analysis_transform(x)))
  latents, count = [], 0
  with rdft.matmul_kernels(model):  # as in training: tfc's irfft2d is slow
    for x in dataset:
      latents.append(analysis(x).numpy())
      count += len(latents[-1])
      if count >= num_crops:
        break
  return np.concatenate(latents)[:num_crops]


def net_bpp(model, y_hat, seed=0):
  """Mean net rate (bits per image pixel) of coding `y_hat` [B, h, w, M] with
  one reparameterized sample of q(z | y_hat), drawn from a stateless seed (the
  same noise for every call with the same shapes and seed)."""
  y_hat = tf.convert_to_tensor(y_hat, tf.float32)
  mean, log_var = model.posterior_z(y_hat)
  eps = tf.random.stateless_normal(tf.shape(mean), [seed, 0])
  z = mean + tf.exp(0.5 * log_var) * eps
  bits = bbvi.net_bits(model, y_hat, z, mean, log_var)
  pixels = tf.cast(tf.reduce_prod(tf.shape(y_hat)[1:3]), tf.float32) * 256.
  return float(tf.reduce_mean(bits) / pixels)


def refit_posterior(model, latents, steps, lr=1e-4, batchsize=16, held_out=128,
                    seed=0, log_every=200, print_fn=print):
  """Fits `model.hyper_analysis_transform` (a `BitsBackHyperprior`'s q(z | y))
  to the rounded `latents` [K, h, w, M] by Adam on their net rate.

  The last `held_out` latents are not trained on; their net rate before and
  after (`net_bpp`, same noise) is returned as a dict with the steps, the
  learning rate, the batch size and the number of latents trained on, for the
  run's config.json.
  """
  if held_out >= len(latents):
    raise ValueError(f"need more than {held_out} crops to hold {held_out} out; "
                     f"got {len(latents)}")
  train, test = latents[:-held_out], latents[-held_out:]
  variables = model.hyper_analysis_transform.trainable_variables
  optimizer = tf.keras.optimizers.Adam(lr)
  pixels = float(train.shape[1] * train.shape[2] * 256)

  @tf.function
  def step(y_hat, step_seed):
    with tf.GradientTape() as tape:
      mean, log_var = model.posterior_z(y_hat)
      eps = tf.random.stateless_normal(tf.shape(mean), step_seed)
      z = mean + tf.exp(0.5 * log_var) * eps
      loss = tf.reduce_mean(
          bbvi.net_bits(model, y_hat, z, mean, log_var)) / pixels
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  rng = np.random.default_rng(seed)
  eta = progress.Eta(steps)
  losses = []
  # Kernels as matrix products, as in training (tfc's irfft2d is slow).
  with rdft.matmul_kernels(model):
    before = net_bpp(model, test)
    for i in range(1, steps + 1):
      batch = train[rng.choice(len(train), min(batchsize, len(train)),
                               replace=False)]
      losses.append(float(step(tf.constant(batch),
                               tf.constant([seed, i], tf.int64))))
      left = eta.update(i)
      if i % log_every == 0 or i == steps:
        print_fn(f"step {i}/{steps}  net bpp {np.mean(losses):.4f}  "
                 f"ETA {progress.format_clock(left)}")
        losses = []
    after = net_bpp(model, test)
  print_fn(f"held-out net bpp ({held_out} crops): {before:.4f} -> {after:.4f}")
  return dict(steps=steps, lr=lr, batchsize=batchsize, crops=len(train),
              held_out=held_out, held_out_net_bpp_before=round(before, 5),
              held_out_net_bpp_after=round(after, 5))
