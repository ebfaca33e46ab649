"""Iterative inference on a tiny model."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.inference import iterative
from tfc_inference.models import checkpoints
from tfc_inference.util import synthetic


@pytest.fixture(scope="module")
def model_and_image(checkpoint_dir, run_names):
  model, _, run_name = checkpoints.load_run(run_names["mbt2018"], checkpoint_dir)
  image = synthetic.test_image(64, 64, seed=2)
  return model, run_name, image


@pytest.mark.parametrize("method", iterative.METHODS)
def test_short_run_lowers_true_loss_of_perturbed_init(method, model_and_image):
  model, _, image = model_and_image
  x = codec.to_batch(image)
  y, z = model.analyze(x)
  noise = tf.random.stateless_normal(tf.shape(y), [3, 4], stddev=1.5)
  config = iterative.InferenceConfig(method=method, iterations=60, t0=0,
                                     lr=0.05 if method != "ste" else 0.01,
                                     eval_every=5)
  result = iterative.IterativeInference(model, config).run(
      x, image.shape[:2], init=(y + noise, z))
  assert result.loss[0] < result.init_loss[0]
  assert len(result.trajectory) == 60 // 5 + 1
  # The returned latents lie on the coding grid.
  loc, _ = model.y_conditional(result.z_hat, tf.shape(result.y_hat)[1:3])
  offsets = (result.y_hat - loc).numpy()
  np.testing.assert_allclose(offsets, np.round(offsets), atol=1e-4)


def test_batch_equals_separate_runs(model_and_image):
  model, _, image = model_and_image
  other = synthetic.test_image(64, 64, seed=9)
  x = tf.concat([codec.to_batch(image), codec.to_batch(other)], 0)
  config = iterative.InferenceConfig(method="danneal", iterations=20)
  batch = iterative.IterativeInference(model, config).run(x, (64, 64))
  single = iterative.IterativeInference(model, config).run(x[1:], (64, 64))
  np.testing.assert_allclose(batch.loss[1], single.loss[0], rtol=1e-3)


def test_sga_file_round_trip_is_exact(model_and_image):
  model, run_name, image = model_and_image
  x = codec.to_batch(image)
  result = iterative.IterativeInference(
      model, iterative.InferenceConfig(method="sga", iterations=30)).run(
          x, image.shape[:2])
  y_hat, z_hat = codec.requantize(model, result.y_hat, result.z_hat)
  data = codec.encode_range_coded(model, run_name, "sga", image, y_hat, z_hat)
  compressed = file_format.CompressedFile.from_bytes(data)
  decoded_y, decoded = codec.range_coded_decode_fn(model, compressed)
  np.testing.assert_array_equal(decoded_y, y_hat.numpy())
  expected = model.synthesize(y_hat)[0, :64, :64].numpy()
  np.testing.assert_array_equal(decoded, np.round(np.clip(expected, 0, 255)))
  assert compressed.method == "sga"


def test_schedule_defaults_per_method():
  sga = iterative.InferenceConfig(method="sga")
  assert (sga.tau0, sga.annealing_rate, sga.t0) == (0.5, 1e-3, 700)
  assert sga.tau(0) == 0.5 and sga.tau(2000) == pytest.approx(0.5 * math.exp(-1.3))
  # Deterministic annealing: the authors' min(0.2, exp(-4e-3 t)).
  danneal = iterative.InferenceConfig(method="danneal")
  for t in (0, 300, 500, 1000, 2000):
    assert danneal.tau(t) == pytest.approx(min(0.2, math.exp(-4e-3 * t)), rel=2e-3)
  # Explicit settings win over the method's defaults.
  assert iterative.InferenceConfig(method="danneal", tau0=0.5).tau0 == 0.5


def test_schedule_scale_compresses_the_schedule():
  """schedule_scale=4 over 500 iterations anneals as the default does over 2000."""
  from tfc_inference.inference import bbvi  # pylint: disable=g-import-not-at-top
  for method in ("sga", "danneal"):
    full = iterative.InferenceConfig(method=method)
    short = iterative.InferenceConfig(method=method, iterations=500,
                                      schedule_scale=4.)
    for t in (0, 100, 175, 250, 499):
      assert short.tau(t) == pytest.approx(full.tau(4 * t))
  joint = bbvi.BitsBackConfig(iterations=500, schedule_scale=4.)
  assert joint.tau(300) == pytest.approx(bbvi.BitsBackConfig().tau(1200))
  for config in (iterative.InferenceConfig, bbvi.BitsBackConfig):
    with pytest.raises(ValueError, match="schedule_scale"):
      config(schedule_scale=0.)
