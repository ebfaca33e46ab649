"""Fixtures: tiny models trained for a few steps on generated images."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference import models  # pylint: disable=g-import-not-at-top
from tfc_inference import synthetic  # pylint: disable=g-import-not-at-top

TINY_FILTERS = 8
TRAIN_STEPS = 150


def train_tiny(prefix, lmbda=0.01, steps=TRAIN_STEPS, seed=0):
  """A tiny model trained briefly with Adam on random crops of generated images."""
  tf.random.set_seed(seed)
  model = models.MODEL_CLASSES[prefix](lmbda=lmbda, num_filters=TINY_FILTERS)
  model.build_all()
  images = tf.constant(synthetic.image_batch(16, 96, 96, seed=seed), tf.float32)
  optimizer = tf.keras.optimizers.Adam(1e-3)

  @tf.function
  def step():
    x = tf.image.random_crop(images, (4, 64, 64, 3))
    with tf.GradientTape() as tape:
      loss = model.relaxed_rd(x, training=True)["loss"]
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  for _ in range(steps):
    step()
  return model


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
  """A checkpoint folder holding one tiny trained run of each model family."""
  root = tmp_path_factory.mktemp("checkpoints")
  for prefix in models.MODEL_CLASSES:
    model = train_tiny(prefix)
    name = models.run_name(prefix, TINY_FILTERS, model.lmbda)
    path = root / name
    path.mkdir()
    checkpoints.save_weights(model, str(path))
    checkpoints.write_config(str(path), dict(
        model=prefix, num_filters=TINY_FILTERS, lmbda=model.lmbda,
        steps=TRAIN_STEPS))
  return str(root)


@pytest.fixture(scope="session")
def run_names():
  return {p: models.run_name(p, TINY_FILTERS, 0.01) for p in models.MODEL_CLASSES}


@pytest.fixture
def test_image():
  return synthetic.test_image(100, 140, seed=3)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: takes more than a few seconds")
  np.set_printoptions(precision=4)
