"""Tiled transforms equal untiled ones, and tiled files decode exactly."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import bayesian_ac_image as bi
from tfc_inference.coding import bits_back
from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.evaluation import options as options_lib
from tfc_inference.inference import bbvi
from tfc_inference.inference import iterative
from tfc_inference.models import checkpoints
from tfc_inference.models import tiling
from tfc_inference.models import transforms
from tfc_inference.models import vae
from tfc_inference.util import metrics
from tfc_inference.util import synthetic

from test_cli import run as run_binary

TRANSFORMS = {
    "hyperprior": (transforms.AnalysisTransform, transforms.SynthesisTransform),
    "vae": (vae.VAEAnalysisTransform, vae.VAESynthesisTransform),
}


def _relative_error(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def test_stride_constant_agrees_with_the_options_copy():
  assert options_lib.TILE_STRIDE == tiling.STRIDE


def test_ranges_cover_the_grid_in_near_equal_parts():
  assert tiling.ranges(10, 0) == [(0, 10)]
  assert tiling.ranges(10, 20) == [(0, 10)]
  parts = tiling.ranges(250, 64)
  assert parts[0][0] == 0 and parts[-1][1] == 250 and len(parts) == 4
  assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
  assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


def test_choose_tile_rule_and_bounds():
  assert tiling.choose_tile((512, 768)) == 0
  assert tiling.choose_tile((2000, 3000)) == tiling.DEFAULT_TILE
  assert tiling.choose_tile((2000, 3000), 0) == 0
  assert tiling.choose_tile((2000, 3000), 512) == 32
  assert tiling.choose_tile((100, 100), 512) == 0  # one tile is no tiling
  for bad in (-16, 100, 16):  # negative, not a multiple of 16, below the minimum
    with pytest.raises(tiling.TilingError):
      tiling.choose_tile((2000, 3000), bad)
  with pytest.raises(tiling.TilingError, match="tiles"):
    tiling.check_tile(2, (2048, 2048))


@pytest.mark.parametrize("family", sorted(TRANSFORMS))
def test_halo_is_the_receptive_radius(family):
  """A latent pixel moves no output pixel more than `halo` latents away, and
  one of them at distance halo - 1 (so the halo is tight)."""
  _, synthesis_class = TRANSFORMS[family]
  synthesis = synthesis_class(8)
  y = tf.random.stateless_normal([1, 12, 12, 8], [1, 2])
  base = synthesis(y).numpy()
  bumped = y.numpy()
  bumped[0, 6, 6, :] += 1.
  changed = np.abs(synthesis(tf.constant(bumped)).numpy() - base).sum(axis=(0, 2, 3))
  rows = np.nonzero(changed)[0] // tiling.STRIDE
  reach = max(6 - rows.min(), rows.max() - 6)
  assert reach <= tiling.halo(synthesis)
  assert reach >= tiling.halo(synthesis) - 1


@pytest.mark.parametrize("family", sorted(TRANSFORMS))
@pytest.mark.parametrize("tile", [2, 3])
def test_tiled_transforms_equal_untiled(family, tile):
  analysis_class, synthesis_class = TRANSFORMS[family]
  analysis, synthesis = analysis_class(8), synthesis_class(8)
  y = tf.random.stateless_normal([2, 7, 9, 8], [3, 4])
  x = tf.random.stateless_uniform([2, 112, 144, 3], [5, 6], maxval=255.)
  assert _relative_error(tiling.synthesize(synthesis, y, tile), synthesis(y)) < 1e-5
  assert _relative_error(tiling.analyze(analysis, x, tile), analysis(x)) < 1e-5


@pytest.mark.parametrize("tile", [0, 2, 3])
def test_tiled_mse_gradient_equals_untiled(tile):
  synthesis = transforms.SynthesisTransform(8)
  y = tf.random.stateless_normal([2, 7, 9, 8], [7, 8])
  x = tf.random.stateless_uniform([2, 112, 144, 3], [9, 10], maxval=255.)
  valid = (100, 130)
  with tf.GradientTape() as tape:
    tape.watch(y)
    error = tf.math.squared_difference(x[:, :100, :130], synthesis(y)[:, :100, :130])
    mse = tf.reduce_mean(error, axis=[1, 2, 3])
    weighted = tf.reduce_sum(mse * [1., 2.])
  expected = tape.gradient(weighted, y).numpy()
  tiled_mse, d_mse = tiling.mse_and_gradient(synthesis, x, y, tile, valid)
  assert _relative_error(tiled_mse, mse) < 1e-5
  assert _relative_error(d_mse.numpy() * [[[[1.]]], [[[2.]]]], expected) < 1e-4
  # The same inside a graph (as the iterative methods run it).
  graph_mse, graph_d_mse = tf.function(
      lambda y: tiling.mse_and_gradient(synthesis, x, y, tile, valid))(y)
  assert _relative_error(graph_d_mse.numpy() * [[[[1.]]], [[[2.]]]], expected) < 1e-4
  assert _relative_error(graph_mse, mse) < 1e-5


def _load(checkpoint_dir, run_names, prefix):
  return checkpoints.load_run(run_names[prefix], checkpoint_dir)


@pytest.mark.parametrize("prefix", ["mbt2018", "bmshj2018"])
def test_tiled_range_coded_file_decodes_exactly(prefix, checkpoint_dir, run_names):
  model, _, name = _load(checkpoint_dir, run_names, prefix)
  image = synthetic.test_image(100, 140, seed=12)
  x = codec.to_batch(image)
  untiled = codec.amortized_latents(model, x)
  with model.tiled(2):
    y_hat, z_hat = codec.amortized_latents(model, x)
    data = codec.encode_range_coded(model, name, prefix, image, y_hat, z_hat)
    encoder_view = model.synthesize(y_hat)[0, :100, :140].numpy()
  compressed = file_format.CompressedFile.from_bytes(data)
  assert compressed.tile == 2 and model.tile == 0
  # The decoder repeats the tiles (the header says so) and gets the encoder's
  # reconstruction bit for bit.
  decoded_y, decoded = codec.range_coded_decode_fn(model, compressed)
  np.testing.assert_array_equal(decoded_y, y_hat.numpy())
  np.testing.assert_array_equal(decoded, np.round(np.clip(encoder_view, 0, 255)))
  # Against the untiled path: the same latents up to rare rounding ties, and
  # the same quality.
  assert np.mean(untiled[0].numpy() != y_hat.numpy()) < 1e-3
  whole = model.synthesize(y_hat)[0, :100, :140].numpy()
  assert abs(metrics.psnr(image, np.round(np.clip(whole, 0, 255)))
             - metrics.psnr(image, decoded)) < 0.01


def _tiled_and_untiled(model, fn):
  with model.tiled(2):
    tiled = fn()
  return tiled, fn()


def test_tiled_sga_step_has_the_untiled_gradient(checkpoint_dir, run_names):
  """What makes tiled SGA follow the untiled optimization: every step's losses
  and gradients (rate and distortion terms) agree up to float rounding."""
  model, _, _ = _load(checkpoint_dir, run_names, "mbt2018")
  images = [synthetic.test_image(100, 140, seed=s) for s in (13, 14)]
  x = tf.concat([codec.to_batch(i) for i in images], 0)
  y0, z0 = model.analyze(x)
  inference = iterative.IterativeInference(
      model, iterative.InferenceConfig(method="sga"))
  inference.freeze_transforms()
  y, z = tf.Variable(y0), tf.Variable(z0)
  seed = tf.constant([[0, 0], [0, 1]])
  (tiled_loss, tiled_grads), (loss, grads) = _tiled_and_untiled(
      model, lambda: inference.relaxed_loss_and_gradients(
          x, y, z, tf.constant(0.4), seed, (100, 140)))
  assert _relative_error(tiled_loss, loss) < 1e-5
  for tiled_grad, grad in zip(tiled_grads, grads):
    assert _relative_error(tiled_grad, grad) < 1e-4
  # Without its rate term the gradient would be far off (a bug once did that).
  distortion_only = _distortion_gradient(inference, x, y, z, seed)
  assert _relative_error(distortion_only, grads[0]) > 1e-2


def _distortion_gradient(inference, x, y, z, seed):
  """d(lambda * mse)/dy at SGA's relaxed latents (no rate term)."""
  with tf.GradientTape() as tape:
    _, y_tilde = inference.relaxed_rate(y, z, tf.constant(0.4), seed)
    mse, _ = inference.model.synthesis_mse(x, y_tilde, (100, 140),
                                           inference._synthesis)  # pylint: disable=protected-access
    total = inference.lmbda * tf.reduce_sum(mse)
  return tape.gradient(total, y)


def test_tiled_sga_run_optimizes(checkpoint_dir, run_names):
  model, _, _ = _load(checkpoint_dir, run_names, "mbt2018")
  images = [synthetic.test_image(100, 140, seed=s) for s in (13, 14)]
  x = tf.concat([codec.to_batch(i) for i in images], 0)
  config = iterative.InferenceConfig(method="sga", iterations=12, eval_every=4)
  tiled, untiled = _tiled_and_untiled(
      model, lambda: iterative.IterativeInference(model, config).run(x, (100, 140)))
  np.testing.assert_allclose(tiled.init_loss, untiled.init_loss, rtol=1e-5)
  # The first step sees the same iterate: the same relaxed loss. Later iterates
  # part (Adam's first steps are about lr * sign(gradient), and float rounding
  # flips the sign of gradients that are almost zero), so the runs are not
  # compared further; the step test above pins the direction.
  np.testing.assert_allclose(tiled.trajectory[0][2], untiled.trajectory[0][2],
                             rtol=1e-5)
  assert np.all(tiled.loss < tiled.init_loss)


@pytest.mark.parametrize("optimize_y", [True, False])
def test_tiled_bits_back_step_has_the_untiled_gradient(optimize_y, checkpoint_dir,
                                                        run_names):
  model, _, _ = _load(checkpoint_dir, run_names, "mbt2018_bb")
  x = codec.to_batch(synthetic.test_image(100, 140, seed=15))
  y0, (mean0, log_var0) = model.analyze(x)
  inference = bbvi.BitsBackInference(
      model, bbvi.BitsBackConfig(optimize_y=optimize_y))
  inference.freeze_transforms()
  y = tf.Variable(y0 if optimize_y else tf.round(y0))
  mean, log_var = tf.Variable(mean0), tf.Variable(log_var0)
  (tiled_loss, tiled_grads), (loss, grads) = _tiled_and_untiled(
      model, lambda: inference.relaxed_loss_and_gradients(
          x, y, mean, log_var, tf.constant(0.4), tf.constant(3), (100, 140)))
  assert len(grads) == (3 if optimize_y else 2)
  assert _relative_error(tiled_loss, loss) < 1e-5
  for tiled_grad, grad in zip(tiled_grads, grads):
    assert _relative_error(tiled_grad, grad) < 1e-4


def test_tiled_bits_back_joint_optimization_and_file(checkpoint_dir, run_names):
  model, _, name = _load(checkpoint_dir, run_names, "mbt2018_bb")
  image = synthetic.test_image(100, 140, seed=15)
  x = codec.to_batch(image)
  config = bbvi.BitsBackConfig(iterations=8, eval_every=4)
  with model.tiled(2):
    y_tiled, tiled = bbvi.BitsBackInference(model, config).run(x, (100, 140))
    data, _ = bits_back.encode_file(model, name, "bb_sga", image, y_tiled)
    encoder_view = model.synthesize(tf.constant(y_tiled))[0, :100, :140].numpy()
  _, untiled = bbvi.BitsBackInference(model, config).run(x, (100, 140))
  np.testing.assert_allclose(tiled["init_loss"], untiled["init_loss"], rtol=1e-5)
  compressed = file_format.CompressedFile.from_bytes(data)
  assert compressed.tile == 2
  decoded, info = bits_back.decode_file(model, compressed)
  np.testing.assert_array_equal(info["y_hat"], y_tiled)
  np.testing.assert_array_equal(decoded, np.round(np.clip(encoder_view, 0, 255)))


def test_tiled_bayesian_ac_file_decodes_exactly(bayesian_ac_run):
  codec_ = bi.ImageCodec.load(bayesian_ac_run[1], bayesian_ac_run[0])
  image = synthetic.test_image(100, 140, seed=16)
  _, untiled, _ = codec_.compress(image, "bayesian_ac", 0.03)
  codec_.tile_pixels = 32
  data, result, quantized = codec_.compress(image, "bayesian_ac", 0.03)
  compressed = file_format.CompressedFile.from_bytes(data)
  assert compressed.tile == 2 and result["tile_pixels"] == 32
  decoded, _ = codec_.decode(data)
  np.testing.assert_array_equal(
      decoded, codec_.reconstruct(quantized.values, image.shape, tile=2))
  assert abs(result["psnr"] - untiled["psnr"]) < 0.05


def test_untiled_and_version_2_files_read_as_untiled(checkpoint_dir, run_names):
  model, _, name = _load(checkpoint_dir, run_names, "mbt2018")
  image = synthetic.test_image(70, 90, seed=17)
  y_hat, z_hat = codec.amortized_latents(model, codec.to_batch(image))
  data = codec.encode_range_coded(model, name, "mbt2018", image, y_hat, z_hat)
  compressed = file_format.CompressedFile.from_bytes(data)
  assert compressed.tile == 0
  # A version-2 container: the same fields without the tile.
  from test_crafted_files import raw_file  # pylint: disable=import-outside-toplevel
  old = raw_file(file_format.METHODS["mbt2018"], name.encode(),
                 (*compressed.image_shape, *compressed.y_shape, *compressed.z_shape),
                 compressed.extra, file_format.pack_strings(compressed.strings),
                 compressed.digest, version=2)
  old_file = file_format.CompressedFile.from_bytes(old)
  old_file.fingerprint = compressed.fingerprint
  assert old_file.tile == 0
  _, decoded = codec.range_coded_decode_fn(model, old_file)
  _, expected = codec.range_coded_decode_fn(model, compressed)
  np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("tile", [1, 65535])
def test_header_tile_outside_bounds_is_a_format_error(tile, checkpoint_dir,
                                                      run_names):
  model, _, name = _load(checkpoint_dir, run_names, "mbt2018")
  image = synthetic.test_image(70, 90, seed=18)
  y_hat, z_hat = codec.amortized_latents(model, codec.to_batch(image))
  compressed = file_format.CompressedFile.from_bytes(
      codec.encode_range_coded(model, name, "mbt2018", image, y_hat, z_hat))
  compressed.tile = tile
  if tile == 1:
    with pytest.raises(file_format.FormatError, match="tile"):
      codec.check_range_coded_header(compressed)
  else:  # a tile larger than the image is one tile
    codec.check_range_coded_header(compressed)


def test_cli_tile_flag_end_to_end(tmp_path, checkpoint_dir, run_names):
  image = synthetic.test_image(100, 140, seed=19)
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  compressed, decoded = tmp_path / "in.tfci", tmp_path / "out.png"
  done = run_binary("mbt2018.py", "compress", run_names["mbt2018"], str(source),
                    str(compressed), "--tile=32", f"--results_dir={tmp_path}",
                    checkpoint_dir=checkpoint_dir)
  assert done.returncode == 0, done.stderr
  with open(tmp_path / "in.json") as f:
    result = json.load(f)
  assert result["tile_pixels"] == 32
  assert file_format.read_file(str(compressed)).tile == 2
  done = run_binary("mbt2018.py", "decompress", str(compressed), str(decoded),
                    checkpoint_dir=checkpoint_dir)
  assert done.returncode == 0, done.stderr
  reconstruction = tf.io.decode_png(decoded.read_bytes()).numpy()
  assert metrics.psnr(image, reconstruction) == pytest.approx(result["psnr"],
                                                              abs=1e-9)


def test_cli_bad_tile_fails_in_one_line_before_loading(tmp_path):
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(synthetic.test_image(64, 64, seed=1)).numpy())
  done = run_binary("mbt2018.py", "compress", "no-such-run", str(source),
                    str(tmp_path / "x.tfci"), "--tile=100")
  assert done.returncode != 0
  assert "multiple of 16" in done.stderr and "no-such-run" not in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1
  assert not os.path.exists(tmp_path / "x.tfci")


def test_mse_of_large_images_is_summed_by_blocks_of_rows():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (1500, 1000, 3), dtype=np.uint8)  # above the block size
  b = rng.integers(0, 256, (1500, 1000, 3), dtype=np.uint8)
  expected = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  assert metrics.mse(a, b) == pytest.approx(expected, rel=1e-12)


def test_banded_ms_ssim_equals_tf(monkeypatch):
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (301, 403, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
  expected = float(tf.image.ssim_multiscale(
      tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=255.))
  whole = metrics.ms_ssim(a, b)  # one band
  monkeypatch.setattr(metrics, "_MS_SSIM_BAND_VALUES", 40 * 403 * 3)
  banded = metrics.ms_ssim(a, b)  # bands of 40 rows
  assert banded == pytest.approx(whole, abs=1e-12)
  # Both compute the maps in float32 (ours on values centred on 128).
  assert banded == pytest.approx(expected, abs=1e-5)


def test_separable_ssim_window_equals_the_2d_window():
  rng = np.random.default_rng(2)
  x = rng.uniform(0, 255, (23, 19, 3))
  taps = metrics._gaussian_taps(11)  # pylint: disable=protected-access
  window = np.outer(taps, taps)
  direct = np.array([[np.sum(x[i:i + 11, j:j + 11] * window[..., None], (0, 1))
                      for j in range(19 - 10)] for i in range(23 - 10)])
  np.testing.assert_allclose(metrics._blur(x, taps), direct, rtol=1e-12)  # pylint: disable=protected-access
