"""The training loop lowers the loss and resumes from its checkpoint."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference import training
from tfc_inference.models import hyperprior
from tfc_inference.models import vae
from tfc_inference.models import widening
from tfc_inference.util import image_io
from tfc_inference.util import synthetic


def _dataset():
  images = tf.constant(synthetic.image_batch(8, 64, 64, seed=0), tf.float32)
  return tf.data.Dataset.from_tensors(images).repeat()


def test_training_lowers_loss_and_resumes(tmp_path):
  tf.keras.utils.set_random_seed(0)
  path = str(tmp_path / "run")
  lines = []
  model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
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
  resumed = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  resumed.build_all()
  lines.clear()
  training.train(resumed, path, _dataset(), 70, 1e-3, config=config,
                 log_every=5, print_fn=lines.append)
  assert any("resumed" in line and "step 60" in line for line in lines)
  assert any(line.startswith("step 70/70") for line in lines)


def test_init_from_transfers_matching_layers():
  source = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  source.build_all()
  target = hyperprior.BitsBackHyperprior(lmbda=0.01, num_filters=8)
  target.build_all()
  assigned = target.set_weight_arrays(source.weight_arrays(), partial=True)
  assert any(k.startswith("analysis_transform") for k in assigned)
  assert any(k.startswith("synthesis_transform") for k in assigned)
  key = next(k for k in assigned if k.startswith("synthesis_transform"))
  np.testing.assert_array_equal(target.weight_arrays()[key],
                                source.weight_arrays()[key])


FAMILIES = sorted(hyperprior.MODEL_CLASSES.values(), key=lambda c: c.__name__)


def _widened(cls, **widths):
  """(narrow model with N = M = 8, the model of `widths` started from it, the
  widened weights)."""
  narrow = cls(lmbda=0.01, num_filters=8)
  narrow.build_all()
  wide = cls(lmbda=0.01, **widths)
  wide.build_all()
  arrays = widening.widen(wide, narrow.weight_arrays())
  wide.set_weight_arrays(arrays)
  return narrow, wide, arrays


@pytest.mark.parametrize("cls", FAMILIES)
def test_a_wider_y_keeps_what_the_narrow_model_computes(cls):
  narrow, wide, _ = _widened(cls, num_filters=8, num_latents=12)
  x = tf.constant(synthetic.image_batch(1, 64, 64, seed=1), tf.float32)
  y = narrow.analysis_transform(x)
  y_wide = wide.analysis_transform(x)
  assert y_wide.shape[-1] == 12
  # Equal up to summation order: a convolution with more output channels may
  # take another kernel path (on an AVX2-only CPU about 85% of the elements
  # differed by up to 2.4e-7; on the AVX-512 machines all matched exactly).
  close = dict(rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(y_wide[..., :8], y, **close)
  # The new channels are read with zero weight, whatever they hold.
  y_any = tf.concat([y, 5. * tf.ones_like(y_wide[..., 8:])], axis=-1)
  np.testing.assert_allclose(wide.synthesis_transform(y_any),
                             narrow.synthesis_transform(y), **close)
  z = narrow.hyper_analysis_transform(narrow.hyper_analysis_input(y))
  np.testing.assert_allclose(
      wide.hyper_analysis_transform(wide.hyper_analysis_input(y_any)), z, **close)
  # Hyper-synthesis outputs come in groups of y channels ([loc, index] or [index]).
  params = narrow.hyper_synthesis_transform(z[..., :8])
  params_wide = wide.hyper_synthesis_transform(z[..., :8])
  groups = params.shape[-1] // 8
  for g in range(groups):
    np.testing.assert_allclose(params_wide[..., 12 * g:12 * g + 8],
                               params[..., 8 * g:8 * (g + 1)], **close)
  same_width = narrow.weight_arrays()
  assert widening.widen(narrow, same_width) is same_width
  with pytest.raises(ValueError, match="--num_latents is at most 8"):
    widening.widen(narrow, wide.weight_arrays())


@pytest.mark.parametrize("cls", FAMILIES)
def test_wider_hidden_layers_keep_what_the_narrow_model_computes(cls):
  narrow, wide, arrays = _widened(cls, num_filters=12, num_latents=8)
  gamma = arrays["synthesis_transform/layer_1/layer_1/igdn_1/reparam_gamma"]
  assert gamma.shape == (12, 12)
  x = tf.constant(synthetic.image_batch(1, 64, 64, seed=1), tf.float32)
  y = narrow.analysis_transform(x)
  # Only the summation order of the convolutions may differ.
  close = dict(rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(wide.analysis_transform(x), y, **close)
  np.testing.assert_allclose(wide.synthesis_transform(y),
                             narrow.synthesis_transform(y), **close)
  h = narrow.hyper_analysis_transform(narrow.hyper_analysis_input(y))
  h_wide = wide.hyper_analysis_transform(wide.hyper_analysis_input(y))
  groups = h.shape[-1] // 8  # [z] or the bits-back posterior's [mean, log variance]
  for g in range(groups):
    np.testing.assert_allclose(h_wide[..., 12 * g:12 * g + 8],
                               h[..., 8 * g:8 * (g + 1)], **close)
  # The new z channels are read with zero weight, whatever they hold.
  z = h[..., :8]
  z_any = tf.concat([z, 3. * tf.ones_like(z[..., :4])], axis=-1)
  np.testing.assert_allclose(wide.hyper_synthesis_transform(z_any),
                             narrow.hyper_synthesis_transform(z), **close)
  with pytest.raises(ValueError, match="--num_filters is at most 8"):
    widening.widen(narrow, wide.weight_arrays())


def test_run_name_and_config_carry_a_wider_y(tmp_path):
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  assert (hyperprior.run_name("mbt2018", 64, 0.08, 192)
          == "mbt2018-num_filters=64-num_latents=192-lmbda=0.08")
  assert hyperprior.run_name("mbt2018", 64, 0.08, 64) == "mbt2018-num_filters=64-lmbda=0.08"
  model = checkpoints.build_model(
      {"model": "mbt2018", "lmbda": 0.08, "num_filters": 8, "num_latents": 12})
  assert model.num_latents == 12 and model.num_filters == 8
  assert model.weight_arrays()["synthesis_transform/layer_0/layer_0/kernel_real"].shape[0] == 12


def test_continuing_from_exported_weights_keeps_counting_and_logs_legs(tmp_path):
  """A run continued from its own weights.npz (a fresh clone has no train/)
  counts on from its `steps`, and config.json's lr_schedule gains one leg per
  command (a string schedule of older runs becomes the first entry)."""
  tf.keras.utils.set_random_seed(0)
  path = str(tmp_path / "run")
  model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  model.build_all()
  config = {"model": "mbt2018", "num_filters": 8, "lmbda": 0.01,
            "lr_schedule": "Adam, lr 0.0003 until step 8, then 3e-05"}
  training.train(model, path, _dataset(), 10, 1e-3, config=config, log_every=10,
                 print_fn=lambda m: None)
  arrays = model.weight_arrays()
  # Trained weights are no longer those of a refit (`posterior_refit`).
  config["posterior_refit"] = [{"steps": 5, "at_step": 10}]
  continued = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  continued.build_all()
  lines = []
  fresh = str(tmp_path / "clone")
  training.train(continued, fresh, _dataset(), 14, 1e-3, config=config,
                 init_arrays=arrays, initial_step=10, decay_at=12,
                 leg_details=dict(patchsize=64), log_every=2,
                 print_fn=lines.append)
  assert "continuing at step 10" in lines
  assert any(line.startswith("step 12/14") for line in lines)
  assert not any(line.startswith("note:") for line in lines)
  with open(os.path.join(fresh, "config.json")) as f:
    saved = json.load(f)
  assert saved["steps"] == 14 and "posterior_refit" not in saved
  head, first, second = saved["lr_schedule"]
  assert head.startswith("Adam, lr 0.0003")
  assert (first["from_step"], first["to_step"], first["decay_at"]) == (0, 10, 8)
  assert (second["from_step"], second["to_step"], second["decay_at"]) == (10, 14, 12)
  assert second["patchsize"] == 64 and second["lr_after"] == pytest.approx(1e-4)
  # The same command again after an interruption adds no leg.
  training.record_leg(saved, training.training_leg(12, 14, 1e-3, 12, patchsize=64))
  assert len(saved["lr_schedule"]) == 3
  with pytest.raises(ValueError, match="at step 14 already"):
    training.train(continued, str(tmp_path / "again"), _dataset(), 14, 1e-3,
                   config=dict(saved), initial_step=14, print_fn=lambda m: None)
  # The default decay (80% of last_step) behind the leg's start is announced.
  lines.clear()
  training.train(continued, str(tmp_path / "late"), _dataset(), 16, 1e-3,
                 config=dict(saved), initial_step=14, log_every=2,
                 print_fn=lines.append)
  assert any(line.startswith("note: the learning rate drops to 0.0001 at step 12,")
             for line in lines)



def test_an_interrupted_leg_records_the_step_it_reached(tmp_path):
  """A command stopped before its --last_step (here: its data ran out) records
  the step it reached as the leg's `to_step`; the same command run again goes on
  in that entry rather than adding an overlapping one."""
  tf.keras.utils.set_random_seed(0)
  path = str(tmp_path / "run")
  model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  model.build_all()

  def train_and_read(dataset, last_step, config):
    training.train(model, path, dataset, last_step, 1e-3, config=config,
                   log_every=100, print_fn=lambda m: None)
    with open(os.path.join(path, "config.json")) as f:
      return json.load(f)

  steps_of = lambda saved, leg: (saved["steps"], leg["from_step"], leg["to_step"],
                                 leg["last_step"])
  saved = train_and_read(_dataset().take(3), 8, {"model": "mbt2018"})
  (leg,) = saved["lr_schedule"]
  assert steps_of(saved, leg) == (3, 0, 3, 8)
  saved = train_and_read(_dataset(), 8, saved)
  (leg,) = saved["lr_schedule"]
  assert steps_of(saved, leg) == (8, 0, 8, 8)
  # Another target is another leg, from where the run stands.
  first, second = train_and_read(_dataset(), 10, saved)["lr_schedule"]
  assert (first["to_step"], second["from_step"], second["to_step"]) == (8, 8, 10)
  # A leg written before `last_step` was recorded matches by its to_step.
  old = {"lr_schedule": [{k: v for k, v in first.items() if k != "last_step"}]}
  assert training.record_leg(old, training.training_leg(5, 8, 1e-3)) is old["lr_schedule"][0]
  assert old["lr_schedule"][0]["last_step"] == 8

def test_each_resumption_draws_other_crops(tmp_path):
  """A new run draws its crops from --seed; a process that resumes a run at step
  s draws them from seed + s, so a run trained in chunks does not replay the same
  crops in every chunk."""
  for i in range(3):
    image_io.write_png(str(tmp_path / f"{i}.png"), synthetic.test_image(48, 48, i))
  path = str(tmp_path / "run")
  assert training.resume_step(path, 7) == 7  # no checkpoint: where the weights are
  model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  model.build_all()
  training.train(model, path, _dataset(), 3, 1e-3, config={}, log_every=100,
                 print_fn=lambda m: None)
  assert training.resume_step(path, 7) == 3  # the checkpoint's step wins
  assert training.data_seed(5, 0) == 5

  def first_batch(seed):
    training.seed_everything(seed)
    dataset, count = training.make_dataset(str(tmp_path / "*.png"), 16, 3, seed)
    assert count == 3
    return next(iter(dataset)).numpy()

  fresh, resumed = first_batch(training.data_seed(0, 0)), first_batch(
      training.data_seed(0, 3))
  assert fresh.shape == (3, 16, 16, 3)
  assert not np.array_equal(fresh, resumed)


@pytest.mark.parametrize("cls", FAMILIES)
def test_a_seeded_new_run_starts_from_the_same_weights(cls):
  """`seed_everything` covers the Keras initializers, which draw their seeds from
  Python's `random` (with `tf.random.set_seed` alone they did not repeat)."""
  def initial_weights(seed):
    training.seed_everything(seed)
    model = cls(lmbda=0.01, num_filters=8)
    model.build_all()
    return model.weight_arrays()

  first, again, other = initial_weights(4), initial_weights(4), initial_weights(5)
  assert first.keys() == again.keys()
  for key in first:
    np.testing.assert_array_equal(first[key], again[key], err_msg=key)
  assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_bfloat16_training_lowers_the_loss_and_leaves_float32_layers(tmp_path):
  """`compute_dtype="bfloat16"` trains the float32 weights through bfloat16
  transforms; afterwards the model runs tfc's layers and kernels again."""
  tf.keras.utils.set_random_seed(0)
  model = hyperprior.MeanScaleHyperprior(lmbda=0.01, num_filters=8)
  model.build_all()
  x = tf.constant(synthetic.image_batch(8, 64, 64, seed=0), tf.float32)
  before = float(model.relaxed_rd(x, training=False)["loss"])
  training.train(model, str(tmp_path / "run"), _dataset(), 40, 1e-3,
                 config={"model": "mbt2018", "num_filters": 8, "lmbda": 0.01},
                 compute_dtype="bfloat16", log_every=20, print_fn=lambda m: None)
  assert float(model.relaxed_rd(x, training=False)["loss"]) < before
  assert model.synthesis_transform.raw_ops_dtype is None
  assert all(type(l.kernel_parameter).__name__ == "RDFTParameter"
             for l in model.synthesis_transform.layers if hasattr(l, "kernel"))
  assert all(v.dtype == tf.float32 for v in model.weights)


def test_training_rate_is_tfc_entropy_models_rate_with_its_gradients():
  """`fused_likelihood.training_rate` (what `relaxed_rd(training=True)` charges
  for y) equals tfc's indexed noisy-normal rate of the same noisy y, gradients
  included, also for scale indexes outside the table (tfc's bounds)."""
  import tensorflow_compression as tfc  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import fused_likelihood  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import scale_table  # pylint: disable=import-outside-toplevel
  shape = [2, 4, 6, 5]
  y = tf.random.stateless_normal(shape, [1, 2], stddev=4.)
  loc = tf.random.stateless_normal(shape, [3, 4])
  # Some indexes below 0 and above the table's last level.
  indexes = tf.random.stateless_uniform(shape, [5, 6], -4., 70.)
  for means in (loc, None):
    with tf.GradientTape(persistent=True) as tape:
      tape.watch([y, indexes])
      y_tilde, bits = fused_likelihood.training_rate(y, indexes, means)
      noise = tf.stop_gradient(y_tilde - y)
      bounded = tfc.upper_bound(tfc.lower_bound(indexes, 0.),
                                scale_table.SCALES_LEVELS - 1.)
      prior = tfc.NoisyNormal(loc=0. if means is None else means,
                              scale=scale_table.scale_fn(bounded))
      expected = -tf.reduce_sum(prior.log_prob(y + noise), axis=[1, 2, 3]) / np.log(2.)
    assert float(tf.reduce_max(tf.abs(noise))) <= 0.5
    np.testing.assert_allclose(bits.numpy(), expected.numpy(), rtol=1e-5)
    for wrt in (y, indexes):
      np.testing.assert_allclose(tape.gradient(bits, wrt).numpy(),
                                 tape.gradient(expected, wrt).numpy(),
                                 rtol=1e-3, atol=1e-4)


def test_a_wider_vae_keeps_what_the_narrow_one_computes():
  narrow = vae.BLS2017VAE(num_filters=8)
  narrow.build_all()
  wide = vae.BLS2017VAE(num_filters=12)
  wide.build_all()
  wide.set_weight_arrays(widening.widen(wide, narrow.weight_arrays()))
  x = tf.constant(synthetic.image_batch(1, 64, 64, seed=1), tf.float32)
  mu, sigma = narrow.posterior(x)
  mu_wide, sigma_wide = wide.posterior(x)
  assert mu_wide.shape[-1] == 12
  # Only the summation order of the convolutions may differ.
  close = dict(rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(mu_wide[..., :8], mu, **close)
  np.testing.assert_allclose(sigma_wide[..., :8], sigma, **close)
  # The new latents are read with zero weight, whatever they hold.
  y_any = tf.concat([mu, 5. * tf.ones_like(mu_wide[..., 8:])], axis=-1)
  np.testing.assert_allclose(wide.synthesis_transform(y_any),
                             narrow.synthesis_transform(mu), **close)
  with pytest.raises(ValueError, match="--num_filters is at most 8"):
    widening.widen(narrow, wide.weight_arrays())


def test_rounded_synthesis_input_reconstructs_the_decoded_y_with_a_gradient():
  """`train_synthesis_input="rounded"`: the training step's distortion is that of
  the rounded y the decoder gets (the scale-only model rounds y as evaluation
  does; the bits-back model's rounded y does not depend on its sampled z), and
  the straight-through gradient still reaches the analysis transform."""
  x = tf.constant(synthetic.image_batch(2, 64, 64, seed=1), tf.float32)
  scale_only = hyperprior.ScaleHyperprior(lmbda=0.01, num_filters=8,
                                          train_synthesis_input="rounded")
  scale_only.build_all()
  with tf.GradientTape() as tape:
    mse = scale_only.relaxed_rd(x, training=True)["mse"]
  np.testing.assert_allclose(
      float(mse), float(scale_only.relaxed_rd(x, training=False)["mse"]),
      rtol=1e-6)
  gradients = tape.gradient(mse, scale_only.analysis_transform.trainable_variables)
  assert all(g is not None for g in gradients)
  assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
  bits_back = hyperprior.BitsBackHyperprior(lmbda=0.01, num_filters=8,
                                            train_synthesis_input="rounded")
  bits_back.build_all()
  first, second = (float(bits_back.relaxed_rd(x, training=True)["mse"])
                   for _ in range(2))
  assert first == second
  with pytest.raises(ValueError, match="train_synthesis_input"):
    hyperprior.MeanScaleHyperprior(train_synthesis_input="round")
