"""RDFT kernel parameters: the matrix form of tfc's inverse RDFT, and swapping it
in for training without changing variables or checkpoint keys."""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.models import hyperprior
from tfc_inference.models import rdft


def test_inverse_rdft_matrix_is_tfcs_irfft():
  rng = np.random.default_rng(0)
  for support in ((5, 5), (3, 3), (4, 6)):
    kernel = rng.normal(size=support + (3, 2)).astype(np.float32)
    parameter = tfc.RDFTParameter(kernel)
    fast = rdft.MatmulRDFTParameter(parameter)
    np.testing.assert_allclose(fast(), parameter(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(fast(), kernel, rtol=0, atol=1e-5)
    assert fast.real is parameter.real and fast.imag is parameter.imag


def test_matmul_gradient_equals_irfft_gradient():
  kernel = np.random.default_rng(1).normal(size=(5, 5, 4, 3)).astype(np.float32)
  parameter = tfc.RDFTParameter(kernel)
  weights = tf.constant(np.random.default_rng(2).normal(size=(5, 5, 4, 3)),
                        tf.float32)
  gradients = []
  for form in (parameter, rdft.MatmulRDFTParameter(parameter)):
    with tf.GradientTape() as tape:
      value = tf.reduce_sum(form() * weights)
    gradients.append(tape.gradient(value, [parameter.real, parameter.imag]))
  for exact, fast in zip(*gradients):
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-5)


def test_matmul_kernels_swap_in_and_back_with_the_same_checkpoint_keys(tmp_path):
  model = hyperprior.MeanScaleHyperprior(num_filters=8, num_latents=12)
  model.build_all()
  x = tf.random.uniform((1, 64, 64, 3), 0, 255, seed=3)
  exact = model.relaxed_rd(x, training=False)["loss"]
  originals = [l.kernel_parameter for l in model.submodules
               if isinstance(l, tfc.SignalConv2D)]
  with rdft.matmul_kernels(model):
    swapped = [l.kernel_parameter for l in model.submodules
               if isinstance(l, tfc.SignalConv2D)]
    assert all(isinstance(p, rdft.MatmulRDFTParameter) for p in swapped)
    np.testing.assert_allclose(model.relaxed_rd(x, training=False)["loss"],
                               exact, rtol=1e-5)
    inside = tf.train.Checkpoint(model=model).save(str(tmp_path / "inside"))
  outside = tf.train.Checkpoint(model=model).save(str(tmp_path / "outside"))
  assert ([l.kernel_parameter for l in model.submodules
           if isinstance(l, tfc.SignalConv2D)] == originals)
  assert (dict(tf.train.list_variables(inside)).keys() ==
          dict(tf.train.list_variables(outside)).keys())
  assert model.relaxed_rd(x, training=False)["loss"].numpy() == exact.numpy()
