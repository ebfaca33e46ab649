"""Fixtures: tiny models trained for a few steps on generated images."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import hyperprior  # pylint: disable=g-import-not-at-top
from tfc_inference.util import synthetic  # pylint: disable=g-import-not-at-top

TINY_FILTERS = 8
TRAIN_STEPS = 150


def train_tiny(prefix, lmbda=0.01, steps=TRAIN_STEPS, seed=0):
  """A tiny model trained briefly with Adam on random crops of generated images.

  Seeded with `tf.keras.utils.set_random_seed`: Keras initializers draw their
  seeds from Python's `random`, which `tf.random.set_seed` leaves alone, so with
  it alone every session trained a different fixture."""
  tf.keras.utils.set_random_seed(seed)
  model = hyperprior.MODEL_CLASSES[prefix](lmbda=lmbda, num_filters=TINY_FILTERS)
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
  for prefix in hyperprior.MODEL_CLASSES:
    model = train_tiny(prefix)
    name = hyperprior.run_name(prefix, TINY_FILTERS, model.lmbda)
    path = root / name
    path.mkdir()
    checkpoints.save_weights(model, str(path))
    checkpoints.write_config(str(path), dict(
        model=prefix, num_filters=TINY_FILTERS, lmbda=model.lmbda,
        steps=TRAIN_STEPS))
  return str(root)


BAC_FILTERS = 8
BAC_TRAIN_STEPS = 40
BAC_LAMBDAS = (0.003, 0.03, 0.3, 3.)
BAC_FIT = dict(lambdas=BAC_LAMBDAS, uniform_steps=(0.05, 0.2), kmeans_levels=(2, 4),
               prior_steps=150, max_rows=20000)


def bac_train_images():
  return synthetic.image_batch(12, 96, 96, seed=100)


@pytest.fixture(scope="session")
def bayesian_ac_run(tmp_path_factory):
  """(checkpoint dir, run name): a tiny VAE trained by `training.train`, fitted."""
  from tfc_inference.coding import bayesian_ac_image as bi  # pylint: disable=import-outside-toplevel
  from tfc_inference import training  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import vae  # pylint: disable=import-outside-toplevel
  root = str(tmp_path_factory.mktemp("bac_checkpoints"))
  name = vae.run_name(BAC_FILTERS)
  path = os.path.join(root, name)
  tf.keras.utils.set_random_seed(0)
  images = tf.constant(bac_train_images(), tf.float32)
  dataset = tf.data.Dataset.from_tensors(images).repeat().map(
      lambda x: tf.image.random_crop(x, (4, 64, 64, 3), seed=1))
  model = vae.BLS2017VAE(num_filters=BAC_FILTERS)
  model.build_all()
  config = dict(model=vae.PREFIX, num_filters=BAC_FILTERS, sigma2=model.sigma2)
  training.train(model, path, dataset, BAC_TRAIN_STEPS, 1e-3, config=config,
                 log_every=BAC_TRAIN_STEPS, save_every=10 ** 6,
                 print_fn=lambda m: None)
  assert config["steps"] == BAC_TRAIN_STEPS
  bi.fit_run(model, path, list(bac_train_images()), config, **BAC_FIT)
  return root, name


@pytest.fixture(scope="session")
def run_names():
  return {p: hyperprior.run_name(p, TINY_FILTERS, 0.01) for p in hyperprior.MODEL_CLASSES}


@pytest.fixture
def test_image():
  return synthetic.test_image(100, 140, seed=3)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: takes more than a few seconds")
  np.set_printoptions(precision=4)
