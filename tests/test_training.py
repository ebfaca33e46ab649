"""The training loop lowers the loss and resumes from its checkpoint."""

import json
import os

import numpy as np
import tensorflow as tf

from tfc_inference import models
from tfc_inference import synthetic
from tfc_inference import training


def _dataset():
  images = tf.constant(synthetic.image_batch(8, 64, 64, seed=0), tf.float32)
  return tf.data.Dataset.from_tensors(images).repeat()


def test_training_lowers_loss_and_resumes(tmp_path):
  tf.random.set_seed(0)
  path = str(tmp_path / "run")
  lines = []
  model = models.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  model.build_all()
  x = tf.constant(synthetic.image_batch(8, 64, 64, seed=0), tf.float32)
  before = float(model.relaxed_rd(x, training=False)["loss"])
  config = {"model": "mbt2018", "num_filters": 8, "lmbda": 0.01}
  training.train(model, path, _dataset(), 60, 1e-3, config=config, log_every=20,
                 save_every=30, print_fn=lines.append)
  after = float(model.relaxed_rd(x, training=False)["loss"])
  assert after < before
  assert any(line.startswith("step 60/60") and "ETA" in line for line in lines)
  assert os.path.exists(os.path.join(path, "weights.npz"))
  with open(os.path.join(path, "config.json")) as f:
    assert json.load(f)["steps"] == 60
  # A new process-equivalent: fresh model resumes at step 60 with equal weights.
  resumed = models.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  resumed.build_all()
  lines.clear()
  training.train(resumed, path, _dataset(), 70, 1e-3, config=config,
                 log_every=5, print_fn=lines.append)
  assert any("resumed" in line and "step 60" in line for line in lines)
  assert any(line.startswith("step 70/70") for line in lines)


def test_init_from_transfers_matching_layers():
  source = models.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  source.build_all()
  target = models.BitsBackHyperprior(lmbda=0.01, num_filters=8)
  target.build_all()
  assigned = target.set_weight_arrays(source.weight_arrays(), partial=True)
  assert any(k.startswith("analysis_transform") for k in assigned)
  assert any(k.startswith("synthesis_transform") for k in assigned)
  key = next(k for k in assigned if k.startswith("synthesis_transform"))
  np.testing.assert_array_equal(target.weight_arrays()[key],
                                source.weight_arrays()[key])
