"""The matmul-free deep factorized density equals tfc's."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.models import factorized
from tfc_inference.models import hyperprior


def _perturb_and_copy(source, target):
  """Moves `source` off its initial values and gives `target` the same ones."""
  for i, (a, b) in enumerate(zip(source.trainable_variables,
                                 target.trainable_variables)):
    assert a.name == b.name and a.shape == b.shape
    a.assign_add(tf.random.stateless_normal(a.shape, [1, i]) * .1)
    b.assign(a)


@pytest.mark.parametrize("noisy", [False, True])
@pytest.mark.parametrize("shape", [[1, 1, 2, 8], [3, 4, 5, 8], [8]])
def test_values_and_gradients_equal_tfc(noisy, shape):
  ours = (factorized.NoisyDeepFactorized if noisy else factorized.DeepFactorized)(
      batch_shape=[8])
  theirs = (tfc.NoisyDeepFactorized if noisy else tfc.DeepFactorized)(
      batch_shape=[8])
  _perturb_and_copy(ours, theirs)
  x = tf.random.stateless_normal(shape, [2, 3]) * 3.
  results = []
  for density in (ours, theirs):
    with tf.GradientTape() as tape:
      tape.watch(x)
      log_p = density.log_prob(x)
      total = tf.reduce_sum(log_p)
    grads = tape.gradient(total, [x] + list(density.trainable_variables))
    results.append([log_p.numpy()] + [g.numpy() for g in grads])
  # Float rounding only; the noisy density's differences of CDFs amplify it.
  for a, b in zip(*results):
    assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_models_use_it_under_the_same_weight_names():
  for prefix in ("mbt2018", "mbt2018_bb"):
    model = hyperprior.MODEL_CLASSES[prefix](lmbda=0.01, num_filters=8)
    model.build_all()
    density = model.hyperprior
    assert isinstance(getattr(density, "base", density), factorized.DeepFactorized)
    names = set(model.weight_arrays())
    assert any(n.startswith("hyperprior/") and "matrix_0" in n for n in names), names
