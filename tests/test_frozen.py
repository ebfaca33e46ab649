"""Fast paths of iterative inference and tiling: frozen transforms (float32
equals the tfc layers bit for bit, bfloat16 stays close, bfloat16 SGA still reports
the layers' numbers) and the two-log-CDF noisy Gaussian."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_inference.inference import iterative
from tfc_inference.models import checkpoints
from tfc_inference.models import frozen
from tfc_inference.models import hyperprior
from tfc_inference.models import noisy_normal
from tfc_inference.models import shipped_runs
from tfc_inference.util import synthetic

from conftest import TINY_FILTERS


def _model(checkpoint_dir, prefix):
  name = hyperprior.run_name(prefix, TINY_FILTERS, 0.01)
  return checkpoints.load_run(name, checkpoint_dir)[0]


def _latents(model, height=128, width=192):
  x = tf.constant(synthetic.image_batch(2, height, width, seed=3), tf.float32)
  y, z = model.analyze(x)
  return y, (z[0] if isinstance(z, tuple) else z)


@pytest.mark.parametrize("prefix", sorted(hyperprior.MODEL_CLASSES))
def test_float32_equals_the_layers_bit_for_bit(checkpoint_dir, prefix):
  model = _model(checkpoint_dir, prefix)
  y, z = _latents(model)
  x = tf.constant(synthetic.image_batch(2, 128, 192, seed=4), tf.float32)
  for transform, inputs in ((model.synthesis_transform, y),
                            (model.hyper_synthesis_transform, z),
                            (model.analysis_transform, x)):
    fast = frozen.FrozenTransform(transform)
    np.testing.assert_array_equal(fast(inputs).numpy(),
                                  transform(inputs).numpy())
    np.testing.assert_array_equal(tf.function(fast)(inputs).numpy(),
                                  tf.function(transform)(inputs).numpy())


def test_bfloat16_is_close_and_returns_float32(checkpoint_dir):
  model = _model(checkpoint_dir, "mbt2018")
  y, _ = _latents(model)
  reference = model.synthesis_transform(y)
  fast = frozen.FrozenTransform(model.synthesis_transform, "bfloat16")
  out = fast(y)
  assert out.dtype == tf.float32 and out.shape == reference.shape
  # bfloat16 keeps 8 significant bits: about 0.4% relative error per value.
  error = tf.reduce_mean(tf.square(out - reference))
  assert float(error) < 1e-4 * float(tf.reduce_mean(tf.square(reference)))
  # The gradient w.r.t. y points the same way.
  grads = []
  for transform in (model.synthesis_transform, fast):
    with tf.GradientTape() as tape:
      tape.watch(y)
      loss = tf.reduce_sum(tf.square(transform(y) - 128.))
    grads.append(tape.gradient(loss, y))
  cosine = tf.reduce_sum(grads[0] * grads[1]) / (
      tf.norm(grads[0]) * tf.norm(grads[1]))
  assert float(cosine) > 0.99


def test_residual_is_the_error_to_the_reference(checkpoint_dir):
  model = _model(checkpoint_dir, "mbt2018")
  y, _ = _latents(model)
  x = tf.constant(synthetic.image_batch(2, 128, 192, seed=4), tf.float32)
  exact = frozen.FrozenTransform(model.synthesis_transform)
  target = exact(y) - x
  np.testing.assert_array_equal(exact.residual(y, x).numpy(), target.numpy())
  fast = frozen.FrozenTransform(model.synthesis_transform, "bfloat16")
  # The last convolution (to RGB, then x 255) runs in bfloat16 here, not float32.
  assert fast._residual[0] is not None and fast._residual[1] == 255.
  rms = lambda a: float(tf.sqrt(tf.reduce_mean(tf.square(a))))  # noqa: E731
  # About as close to float32 as the bfloat16 transform with its float32 last
  # convolution, eagerly and traced (again for a new shape, as iterative
  # inference traces its steps; graph rewrites may round differently).
  traced = tf.function(fast.residual)
  for n in (2, 1):
    bound = 1.5 * rms(fast(y[:n]) - x[:n] - target[:n])
    assert rms(fast.residual(y[:n], x[:n]) - target[:n]) < bound
    assert rms(traced(y[:n], x[:n]) - target[:n]) < bound
  # The last convolution alone, on the same (bfloat16) inputs: the error it
  # computes is far closer to float32's than its output rounded to bfloat16.
  # (The shipped base run's weights: a tiny run trained for the tests differs
  # from one session to the next.)
  shipped = checkpoints.load_run(shipped_runs.BASE_RUN)[0]
  layer = [l for l in shipped.synthesis_transform.layers
           if isinstance(l, tfc.SignalConv2D)][-1]
  h = shipped.analysis_transform(x)
  for hidden in shipped.synthesis_transform.layers[:-2]:
    h = hidden(h)
  h = tf.cast(tf.cast(h, tf.bfloat16), tf.float32)
  output = frozen.FrozenTransform(shipped.synthesis_transform).convolutions[-1](h)
  # An image the output reconstructs to a few levels of 255, as trained ones do.
  reference = (tf.round(255. * output) +
               tf.random.stateless_normal(output.shape, [7, 8], stddev=3.)) / 255.
  error = frozen.ResidualConv(layer, "bfloat16")(h, reference)
  rounded = tf.cast(tf.cast(output, tf.bfloat16), tf.float32)
  assert rms(error - (output - reference)) < 0.5 * rms(rounded - output)
  gradients = []
  for error in (lambda: exact(y) - x, lambda: fast.residual(y, x)):
    with tf.GradientTape() as tape:
      tape.watch(y)
      loss = tf.reduce_mean(tf.square(error()))
    gradients.append(tape.gradient(loss, y).numpy().ravel())
  cosine = gradients[0] @ gradients[1] / (np.linalg.norm(gradients[0]) *
                                          np.linalg.norm(gradients[1]))
  assert cosine > 0.99


@pytest.mark.parametrize("support,stride", [((5, 5), 2), ((3, 3), 2), ((5, 3), 3)])
def test_residual_conv_is_the_layer_in_sub_pixel_form(support, stride):
  # In float32 the sub-pixel form sums the same products as the transposed
  # convolution: equal to rounding, borders included, for other kernel sizes and
  # strides too; and its kernel is differentiable w.r.t. the layer's weights.
  layer = tfc.SignalConv2D(
      3, support, corr=False, strides_up=stride, padding="same_zeros",
      use_bias=True, bias_initializer=tf.keras.initializers.Constant([.1, -.2, .3]))
  h = tf.random.stateless_normal([2, 7, 9, 8], [1, 2])
  output = layer(h)
  reference = tf.random.stateless_normal(output.shape, [3, 4])
  with tf.GradientTape() as tape:
    error = frozen.ResidualConv(layer, "float32")(h, reference)
    loss = tf.reduce_sum(tf.square(error))
  np.testing.assert_allclose(error.numpy(), (output - reference).numpy(),
                             atol=1e-5)
  gradients = tape.gradient(loss, layer.trainable_variables)
  assert all(g is not None for g in gradients)


def test_prepared_reference_gives_the_same_residual(checkpoint_dir):
  model = _model(checkpoint_dir, "mbt2018")
  y, _ = _latents(model)
  x = tf.constant(synthetic.image_batch(2, 128, 192, seed=4), tf.float32)
  for dtype in ("float32", "bfloat16"):
    fast = frozen.FrozenTransform(model.synthesis_transform, dtype)
    prepared = frozen.prepare_reference(fast, x)
    assert (prepared.parts is None) == (dtype == "float32")
    assert prepared.shape == x.shape
    # Eagerly the same values bit for bit.
    error = frozen.reconstruction_error
    np.testing.assert_array_equal(error(fast, y, prepared).numpy(),
                                  error(fast, y, x).numpy())
    # Traced, grappler rewrites the two graphs differently (the parts are
    # constants in one): a few bfloat16 outputs round one step apart.
    traced = tf.function(frozen.reconstruction_error)
    a, b = traced(fast, y, prepared).numpy(), traced(fast, y, x).numpy()
    # Two steps of bfloat16 at the error's or the image's magnitude (the image
    # enters the bfloat16 convolution as high and low parts).
    step = 2.**-6 * np.maximum(np.maximum(np.abs(a), np.abs(b)),
                               float(tf.reduce_max(tf.abs(x))))
    assert np.all(np.abs(a - b) <= step)
    assert np.mean(a != b) < 1e-3
  # Any other transform reads the image from it.
  layers = model.synthesis_transform
  np.testing.assert_array_equal(
      frozen.reconstruction_error(layers, y, frozen.prepare_reference(layers, x)),
      layers(y) - x)


def test_snapshot_is_reused_until_the_weights_change(checkpoint_dir):
  model = _model(checkpoint_dir, "mbt2018")
  transform = model.hyper_synthesis_transform
  _, z = _latents(model)
  first = frozen.snapshot(transform)
  assert isinstance(first, frozen.FrozenTransform)
  assert frozen.snapshot(transform) is first
  np.testing.assert_array_equal(first(z).numpy(), transform(z).numpy())
  # Any changed weight (here one bias, as a training step would) gives a new
  # snapshot that follows the layers again.
  bias = next(v for v in transform.weights if "bias" in v.name)
  bias.assign_add(tf.fill(bias.shape, 0.5))
  second = frozen.snapshot(transform)
  assert second is not first
  np.testing.assert_array_equal(second(z).numpy(), transform(z).numpy())
  assert not np.array_equal(first(z).numpy(), second(z).numpy())
  # Inside a tf.function the layers run themselves (gradients reach weights).
  assert tf.function(lambda: frozen.snapshot(transform) is transform)()


def test_coding_does_not_change_with_snapshots(checkpoint_dir):
  """Coding paths run cached snapshots; the layers give the same numbers."""
  model = _model(checkpoint_dir, "mbt2018")
  y, z = _latents(model)
  z_hat = model.quantize_z(z)
  for got, expected in zip(model.coding_conditional(z_hat, tf.shape(y)[1:3]),
                           model.y_conditional(z_hat, tf.shape(y)[1:3])):
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
  np.testing.assert_array_equal(
      model.synthesize(y).numpy(),
      tf.clip_by_value(model.synthesis_transform(y), 0., 255.).numpy())


def test_refuses_what_it_cannot_run(checkpoint_dir):
  model = _model(checkpoint_dir, "mbt2018")
  with pytest.raises(ValueError, match="dtype"):
    frozen.FrozenTransform(model.synthesis_transform, "float16")


@pytest.mark.parametrize("height, width", [(128, 192), (80, 112)])
def test_bfloat16_analysis_aligns_as_tfc(checkpoint_dir, height, width):
  """Downsampling in bfloat16 pads and correlates "VALID": tfc's sums, also
  where a size is not a multiple of the stride (80 / 16 = 5: odd at 8x)."""
  model = _model(checkpoint_dir, "mbt2018")
  x = tf.constant(synthetic.image_batch(1, height, width, seed=5), tf.float32)
  reference = model.analysis_transform(x)
  out = frozen.FrozenTransform(model.analysis_transform, "bfloat16")(x)
  assert out.dtype == tf.float32 and out.shape == reference.shape
  error = tf.reduce_mean(tf.square(out - reference))
  assert float(error) < 1e-4 * float(tf.reduce_mean(tf.square(reference)))


def test_computed_in_trains_through_bfloat16_and_restores(checkpoint_dir):
  """Inside `computed_in`, calls run as bfloat16 raw ops of the current weights
  with gradients for them; outside, the layers again, bit for bit."""
  model = _model(checkpoint_dir, "mbt2018")
  x = tf.constant(synthetic.image_batch(2, 64, 64, seed=6), tf.float32)
  exact = model.relaxed_rd(x, training=False)
  variables = model.analysis_transform.trainable_variables
  with frozen.computed_in([model.analysis_transform,
                           model.synthesis_transform], "bfloat16"):
    with tf.GradientTape() as tape:
      fast = model.relaxed_rd(x, training=False)
    gradients = tape.gradient(fast["loss"], variables)
  assert all(g is not None for g in gradients)
  np.testing.assert_allclose(fast["loss"], exact["loss"], rtol=0.02)
  # Traced, as training's steps are: the frozen transforms are built in a graph.
  with frozen.computed_in([model.analysis_transform,
                           model.synthesis_transform], "bfloat16"):
    traced = tf.function(lambda: model.relaxed_rd(x, training=False)["loss"])()
  np.testing.assert_allclose(traced, exact["loss"], rtol=0.02)
  assert model.analysis_transform.raw_ops_dtype is None
  np.testing.assert_array_equal(model.relaxed_rd(x, training=False)["loss"],
                                exact["loss"])


def test_bfloat16_sga_reports_the_layers_numbers(checkpoint_dir):
  """The relaxed objective may run in bfloat16, but the rounded latents' reported
  loss is the float32 layers' (what the decoder computes)."""
  model = _model(checkpoint_dir, "mbt2018")
  x = tf.constant(synthetic.image_batch(1, 128, 128, seed=5), tf.float32)
  config = iterative.InferenceConfig(iterations=20, compute_dtype="bfloat16")
  result = iterative.IterativeInference(model, config).run(x)
  terms = model.true_rd(x, result.y_hat, result.z_hat)
  np.testing.assert_array_equal(result.bpp, terms["bpp"].numpy())
  np.testing.assert_array_equal(result.mse, terms["mse"].numpy())
  assert result.loss[0] < result.init_loss[0]


@pytest.mark.parametrize("scale", [0.11, 0.7, 3., 256.])
def test_noisy_normal_log_prob_equals_tfc(scale):
  x = tf.constant(np.linspace(-40., 40., 801), tf.float32)
  loc = tf.constant(0.3)
  results = []
  for fn in (lambda v: noisy_normal.log_prob(v, loc, scale),
             lambda v: tfc.NoisyNormal(loc=loc, scale=scale).log_prob(v)):
    with tf.GradientTape() as tape:
      tape.watch(x)
      log_p = fn(x)
    results.append((log_p.numpy(), tape.gradient(log_p, x).numpy()))
  (ours, our_grad), (theirs, their_grad) = results
  assert np.all(np.isfinite(ours)) and np.all(np.isfinite(our_grad))
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(our_grad, their_grad, rtol=1e-3, atol=1e-3)


def test_bfloat16_on_a_cpu_without_it_warns_once(monkeypatch):
  assert frozen.native_bfloat16() in (True, False, None)  # this machine's
  messages = []
  monkeypatch.setattr(frozen, "_warned_slow", [])
  monkeypatch.setattr(frozen, "native_bfloat16", lambda: False)
  assert frozen.warn_if_slow_bfloat16("float32", messages.append) is None
  assert "emulated" in frozen.warn_if_slow_bfloat16("bfloat16", messages.append)
  frozen.warn_if_slow_bfloat16("bfloat16", messages.append)
  assert len(messages) == 1


@pytest.mark.parametrize("features, slow", [
    (("AuthenticAMD", {"avx512f", "avx512_bf16"}), False),
    (("GenuineIntel", {"avx512f", "avx512_bf16", "amx_bf16"}), False),
    (("GenuineIntel", {"avx512f", "avx512_bf16"}), True),
    (("GenuineIntel", {"avx512f"}), True),
    (None, False),  # no /proc/cpuinfo: unknown, no warning
])
def test_bfloat16_warns_on_cpus_where_it_measured_slower(monkeypatch, features,
                                                         slow):
  monkeypatch.setattr(frozen, "_warned_slow", [])
  monkeypatch.setattr(frozen, "cpu_features", lambda: features)
  messages = []
  message = frozen.warn_if_slow_bfloat16("bfloat16", messages.append)
  assert (message is not None) == slow
  assert messages == ([message] if slow else [])
  assert frozen.warn_if_slow_bfloat16("float32", messages.append) is None


def test_cpu_features_reads_vendor_and_flags():
  info = frozen.cpu_features()
  if info is not None:  # Linux
    vendor, features = info
    assert isinstance(vendor, str) and isinstance(features, set)
    assert frozen.native_bfloat16() == bool(
        features & {"avx512_bf16", "amx_bf16"})
