"""Bayesian AC of images with the bls2017 VAE, its baselines, and its binary."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import bayesian_ac
from tfc_inference.coding import bayesian_ac_image as bi
from tfc_inference.coding import bayesian_ac_tables
from tfc_inference.coding import file_format
from tfc_inference.coding import scalar_quantizers
from tfc_inference.evaluation import bayesian_ac_sweep
from tfc_inference.evaluation import options as options_lib
from tfc_inference.models import checkpoints
from tfc_inference.models import vae
from tfc_inference.util import image_io
from tfc_inference.util import synthetic

from conftest import BAC_FILTERS as NUM_FILTERS  # pylint: disable=g-bad-import-order
from conftest import BAC_FIT as FIT
from conftest import BAC_LAMBDAS as LAMBDAS
from conftest import bac_train_images as train_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run(bayesian_ac_run):
  """(checkpoint dir, run name): a tiny VAE trained by `training.train`, fitted."""
  return bayesian_ac_run


@pytest.fixture(scope="module")
def codec(run):
  return bi.ImageCodec.load(run[1], run[0])


@pytest.fixture
def image():
  return synthetic.test_image(70, 100, seed=7)


def test_vae_weights_are_keyed_stably_and_round_trip(run):
  model, tables, config, name = vae.load_run(run[1], run[0])
  assert name == run[1] and config["model"] == vae.PREFIX
  other = vae.BLS2017VAE(num_filters=NUM_FILTERS)
  other.build_all()
  assert sorted(other.named_weights()) == sorted(model.named_weights())
  assert all(k.startswith(("analysis_transform/", "synthesis_transform/"))
             for k in model.named_weights())
  other.set_weight_arrays(model.weight_arrays())
  x = tf.constant(synthetic.image_batch(1, 32, 48, seed=1), tf.float32)
  np.testing.assert_array_equal(other.posterior(x)[0], model.posterior(x)[0])
  terms = model.relaxed_rd(x, training=False)
  assert set(terms) == {"loss", "bpp", "mse"}
  assert float(terms["loss"]) > float(terms["bpp"]) > 0
  # The fingerprint covers the coding tables too.
  changed = dict(tables, **{"uniform/settings": tables["uniform/settings"] * 2})
  assert (vae.fingerprint(model.weight_arrays(), tables)
          != vae.fingerprint(model.weight_arrays(), changed))


def test_tabulated_prior_matches_the_fitted_deep_factorized(codec, run):
  _, tables = checkpoints.load_arrays(os.path.join(*run))
  density = bayesian_ac_tables.deep_factorized_from_arrays(tables, NUM_FILTERS)
  prior = codec.tables.prior
  x = np.random.default_rng(0).normal(0., 1., [500, NUM_FILTERS])
  np.testing.assert_allclose(prior.cdf(x), density.cdf(x).numpy(), atol=1e-5)
  xi = np.random.default_rng(1).uniform(1e-6, 1 - 1e-6, [500, NUM_FILTERS])
  np.testing.assert_allclose(prior.cdf(prior.quantile(xi)), xi, rtol=1e-9)
  assert np.all(np.diff(prior.quantile(np.sort(xi, axis=0)), axis=0) >= 0)


def test_bayesian_ac_round_trip_is_exact(codec, image):
  for lmbda in LAMBDAS + (0.05,):  # 0.05 is off the fitted grid
    data, result, quantized = codec.compress(image, "bayesian_ac", lmbda)
    decoded, info = codec.decode(data)
    np.testing.assert_array_equal(info["values"], quantized.values)
    # The decoded image is the encoder's reconstruction from its code points.
    np.testing.assert_array_equal(
        decoded, codec.reconstruct(quantized.values, image.shape))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert info["quantizer"] == "bayesian_ac" and info["setting"] == lmbda
    assert result["bpp"] == pytest.approx(8 * len(data) / (70 * 100))
    assert result["psnr"] == pytest.approx(
        10 * np.log10(255 ** 2 / np.mean((decoded - image.astype(float)) ** 2)))
  assert codec.table_index("bayesian_ac", 0.05) == LAMBDAS.index(0.03)


def test_bayesian_ac_code_points_are_algorithm_1(codec, image):
  posterior = codec.analyze(image)
  quantized = codec.quantize(posterior, "bayesian_ac", 0.03)
  quantile_fn, cdf_fn = codec.tables.prior.functions()
  expected = bayesian_ac.encode(posterior.mu, posterior.sigma, quantile_fn, cdf_fn,
                                0.03, max_bits=bayesian_ac_tables.MAX_BITS)
  np.testing.assert_array_equal(quantized.symbols, expected.symbols)
  np.testing.assert_array_equal(quantized.values, expected.values)


def test_rate_decreases_and_distortion_increases_with_lambda(codec):
  image = synthetic.test_image(96, 128, seed=11)
  posterior = codec.analyze(image)
  coded = [codec.compress(image, "bayesian_ac", lmbda, posterior=posterior)
           for lmbda in LAMBDAS]
  results = [result for _, result, _ in coded]
  bpp = [r["bpp"] for r in results]
  est = [r["est_bpp"] for r in results]
  bits = [r["code_point_bits_per_latent"] for r in results]
  assert np.all(np.diff(est) < 0), est
  assert np.all(np.diff(bits) < 0), bits
  assert np.all(np.diff(bpp) <= 0) and bpp[0] > bpp[-1], bpp
  # Distortion in the latent space, weighted by the posterior precision (what
  # Algorithm 1 trades against bits; the barely trained decoder's MSE need not
  # follow it).
  distortion = [np.sum((q.values - posterior.mu) ** 2 / posterior.sigma ** 2)
                for _, _, q in coded]
  assert np.all(np.diff(distortion) > 0), distortion


@pytest.mark.parametrize("quantizer,settings", [("uniform", (0.05, 0.2)),
                                                ("kmeans", (2, 4))])
def test_baselines_round_trip(codec, image, quantizer, settings):
  posterior = codec.analyze(image)
  rates = []
  for setting in settings:
    data, result, quantized = codec.compress(image, quantizer, setting,
                                             posterior=posterior)
    decoded, info = codec.decode(data)
    assert info["quantizer"] == quantizer
    np.testing.assert_array_equal(info["values"], quantized.values)
    np.testing.assert_array_equal(
        decoded, codec.reconstruct(quantized.values, image.shape))
    rates.append(result["est_bpp"])
    if quantizer == "uniform":
      np.testing.assert_allclose(quantized.values,
                                 setting * np.round(posterior.mu / setting))
    else:
      centers = codec.tables.kmeans_centers[codec.table_index(quantizer, setting)]
      for c in range(NUM_FILTERS):
        grid = centers[c][~np.isnan(centers[c])]
        assert len(grid) == setting
        nearest = grid[np.argmin(np.abs(posterior.mu[..., c, None] - grid), -1)]
        np.testing.assert_array_equal(quantized.values[..., c], nearest)
  # Finer uniform steps / more k-means levels cost more bits.
  assert (rates[0] > rates[1]) == (quantizer == "uniform"), rates
  with pytest.raises(ValueError, match="coding tables only for"):
    codec.table_index(quantizer, 3.)


def test_fit_centroids_are_the_means_of_each_symbols_latents():
  symbols = np.array([[1, 2], [1, 2], [3, 2], [1, 5]], np.int64)
  mu = np.array([[.1, 1.], [.3, 2.], [-1., 3.], [.5, 4.]])
  distributions = [bayesian_ac.SymbolDistribution(
      symbols=np.array(known, np.int64), probabilities=np.ones(len(known) + 1),
      bits_probabilities=np.ones(2), max_bits=2) for known in ([3, 1, 7], [2])]
  centroids = bayesian_ac_tables.fit_centroids(symbols, mu, distributions)
  np.testing.assert_allclose(centroids[0], [-1., .3, np.nan])
  np.testing.assert_allclose(centroids[1], [2.])
  lookup = bayesian_ac_tables.CentroidLookup(distributions, centroids)
  # Symbols with a centroid take it; others (7: no latent; 5: escaped) keep
  # their code point's value.
  values = lookup.values(np.array([[3, 2], [7, 5]]), np.array([[9., 9.], [8., 6.]]))
  np.testing.assert_allclose(values, [[-1., 2.], [8., 6.]])


def test_centroid_decoding_codes_bayesian_ac_symbols_at_centroids(codec, run, image):
  posterior = codec.analyze(image)
  for lmbda in LAMBDAS:
    plain = codec.compress(image, "bayesian_ac", lmbda, posterior=posterior)
    data, result, quantized = codec.compress(image, "bayesian_ac_centroids", lmbda,
                                             posterior=posterior)
    # The same symbols and bits; only the reconstruction differs.
    np.testing.assert_array_equal(quantized.symbols, plain[2].symbols)
    # A sweep's shortcut (centroids on the symbols it has) quantizes the same.
    reused = codec.with_centroids(plain[2])
    np.testing.assert_array_equal(reused.values, quantized.values)
    assert reused.table_index == quantized.table_index
    assert codec.compress(image, "bayesian_ac_centroids", lmbda,
                          posterior=posterior, quantized=reused)[0] == data
    with pytest.raises(ValueError, match="not bayesian_ac_centroids"):
      codec.compress(image, "bayesian_ac_centroids", lmbda, posterior=posterior,
                     quantized=plain[2])
    assert len(data) == len(plain[0]) and result["lmbda"] == lmbda
    decoded, info = codec.decode(data)
    assert info["quantizer"] == "bayesian_ac_centroids"
    np.testing.assert_array_equal(info["values"], quantized.values)
    np.testing.assert_array_equal(
        decoded, codec.reconstruct(quantized.values, image.shape))
    # The other quantizer id in either file's header: a digest error, not
    # another image.
    for original in (data, plain[0]):
      parsed = file_format.CompressedFile.from_bytes(original)
      quantizer, setting, index = bi._EXTRA.unpack(parsed.extra)  # pylint: disable=protected-access
      swapped = dataclasses.replace(parsed, extra=bi._EXTRA.pack(  # pylint: disable=protected-access
          3 - quantizer, setting, index))
      with pytest.raises(file_format.FormatError, match="digest"):
        codec.decode(swapped.to_bytes())
  # On the latents the centroids were fitted on (all of them: fewer than
  # max_rows), each symbol's centroid is no farther from the means than its code
  # point, in sum: the centroid minimizes the squared error of its symbol's set.
  model = codec.model
  mus, sigmas = bi.posteriors(model, list(train_images()))
  for lmbda in LAMBDAS:
    errors = {}
    for quantizer in bi.BAYESIAN_AC_QUANTIZERS:
      errors[quantizer] = sum(
          np.sum((codec.quantize(bi.Posterior(m.astype(np.float64),
                                              s.astype(np.float64), (0, 0)),
                                 quantizer, lmbda).values - m) ** 2)
          for m, s in zip(mus, sigmas))
    assert errors["bayesian_ac_centroids"] <= errors["bayesian_ac"] * (1 + 1e-6)
  # Tables fitted before centroids existed: a clear error, and sweeps skip it.
  arrays = dict(np.load(os.path.join(run[0], run[1], "weights.npz")))
  tables = {k[len("tables/"):]: v for k, v in arrays.items()
            if k.startswith("tables/") and k != "tables/bayesian_ac/centroids"}
  old = bi.ImageCodec(model, tables, run[1])
  with pytest.raises(ValueError, match="no Bayesian AC centroids"):
    old.table_index("bayesian_ac_centroids", 1.)
  assert "bayesian_ac_centroids" not in bayesian_ac_sweep.available_methods(old)
  assert "bayesian_ac_centroids" in bayesian_ac_sweep.available_methods(codec)
  # Adding centroids to such tables (`fit --centroids_only`) gives the ones a
  # full fit gives, and changes nothing else.
  added = bayesian_ac_tables.add_centroids(tables, mus, sigmas, FIT["max_rows"])
  fitted = arrays["tables/bayesian_ac/centroids"]
  np.testing.assert_array_equal(added["bayesian_ac/centroids"], fitted)
  assert all(added[k] is v for k, v in tables.items())
  with pytest.raises(checkpoints.CheckpointError, match="centroids do not match"):
    bi.ImageCodec(model, dict(tables, **{"bayesian_ac/centroids": fitted[:-1]}),
                  run[1])


def test_kmeans_1d_and_zigzag():
  samples = np.concatenate([np.full(100, -1.), np.full(50, 2.), np.full(10, 7.)])
  np.testing.assert_allclose(scalar_quantizers.kmeans_1d(samples, 3), [-1., 2., 7.])
  indices = np.arange(-5, 6)
  symbols = scalar_quantizers.zigzag(indices)
  assert symbols.min() == 1 and len(np.unique(symbols)) == len(indices)
  np.testing.assert_array_equal(scalar_quantizers.unzigzag(symbols), indices)


def test_collapsed_channel_costs_about_zero_bits(run):
  model, _, _, name = vae.load_run(run[1], run[0])
  mus, sigmas = bi.posteriors(model, list(train_images()))
  collapsed = 3

  def collapse(mu, sigma):
    mu, sigma = mu.copy(), sigma.copy()
    mu[..., collapsed], sigma[..., collapsed] = 0., 1.
    return mu, sigma

  pairs = [collapse(m, s) for m, s in zip(mus, sigmas)]
  arrays, _ = bayesian_ac_tables.fit_coding_tables(
      [p[0] for p in pairs], [p[1] for p in pairs], **FIT)
  codec = bi.ImageCodec(model, arrays, name)
  image = synthetic.test_image(96, 128, seed=5)
  posterior = codec.analyze(image)
  posterior.mu, posterior.sigma = collapse(posterior.mu, posterior.sigma)
  latents = posterior.mu.shape[0] * posterior.mu.shape[1]
  assert np.all(posterior.kl_bits()[..., collapsed] == 0.)
  for lmbda in LAMBDAS:
    quantized = codec.quantize(posterior, "bayesian_ac", lmbda)
    np.testing.assert_array_equal(quantized.symbols[..., collapsed], 1)
    bits = bayesian_ac_tables.channel_bits(
        quantized.symbols,
        codec.distributions("bayesian_ac", quantized.table_index)) / latents
    assert bits[collapsed] < 0.01, bits
    if lmbda == LAMBDAS[0]:
      assert np.all(np.delete(bits, collapsed) > 0.1), bits
    decoded = codec.decode(codec.encode(posterior, quantized))[1]["values"]
    np.testing.assert_array_equal(decoded, quantized.values)


def test_rate_distortion_sweep_writes_csvs_and_channel_report(codec, tmp_path):
  images = [("a", synthetic.test_image(64, 80, seed=3)),
            ("b", synthetic.test_image(48, 64, seed=4))]
  sweep = bayesian_ac_sweep.rate_distortion(codec, images, lambdas=[0.01, 1.],
                                            jpeg_qualities=[20, 80])
  # Bayesian AC, its centroid decoding, uniform, k-means: 2 settings each.
  assert len(sweep["results"]) == 2 * (2 + 2 + 2 + 2 + 2)
  paths = bayesian_ac_sweep.write_rate_distortion(str(tmp_path), sweep)
  for method, column in bi.PARAMETER_NAMES.items():
    with open(paths[method]) as f:
      header = f.readline().strip().split(",")
      rows = f.read().strip().splitlines()
    assert header[:4] == [column, "bpp", "psnr", "ms_ssim"] and len(rows) == 2
  jpeg = sweep["rows"]["jpeg"]
  assert jpeg[0]["bpp"] < jpeg[1]["bpp"] and jpeg[0]["psnr"] < jpeg[1]["psnr"]
  with open(paths["channels"]) as f:
    report = json.load(f)
  assert len(report["channels"]) == NUM_FILTERS and report["lambdas"] == [0.01, 1.]
  for channel in report["channels"]:
    assert len(channel["bits_per_latent"]) == 2
    # Guaranteed per latent, hence per channel: the minimizer of
    # D(xi) + 2 lambda sigma^2 R(xi) has R non-increasing in lambda. The ideal code
    # length under the fitted per-lambda tables only falls on average (the tables
    # differ per lambda), so per channel it is not asserted.
    points = channel["code_point_bits_per_latent"]
    assert points[0] >= points[1] >= 1
  assert (sum(ch["bits_per_latent"][0] for ch in report["channels"]) >
          sum(ch["bits_per_latent"][1] for ch in report["channels"]))
  # Per-channel ideal bits add up to the est_bpp of the sweep.
  total = sum(ch["bits_per_latent"][0] for ch in report["channels"])
  latents = report["latents_per_channel"]
  est = [r for r in sweep["results"] if r["method"] == "bayesian_ac"
         and r["setting"] == 0.01]
  pixels = sum(r["height"] * r["width"] for r in est)
  assert total * latents / pixels == pytest.approx(
      sum(r["est_bpp"] * r["height"] * r["width"] for r in est) / pixels)


def binary(*args, checkpoint_dir):
  env = dict(os.environ, TFC_INFERENCE_CHECKPOINTS=checkpoint_dir)
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", "bayesian_ac.py"), *args],
      capture_output=True, text=True, env=env, timeout=300)


def test_cli_compress_decompress_in_separate_processes(run, tmp_path):
  root, name = run
  image = synthetic.test_image(70, 90, seed=21)
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  compressed, decoded = tmp_path / "in.tfci", tmp_path / "out.png"
  results = tmp_path / "results"
  args = ["compress", name, str(source), str(compressed), "--lambda=0.1",
          f"--results_dir={results}"]
  done = binary(*args, checkpoint_dir=root)
  assert done.returncode == 0, done.stderr
  with open(results / "in.json") as f:
    result = json.load(f)
  assert result["bpp"] == pytest.approx(8 * os.path.getsize(compressed) / (70 * 90))
  assert result["lmbda"] == 0.1 and result["method"] == "bayesian_ac"
  header = file_format.read_file(str(compressed))
  assert header.method == "bayesian_ac" and header.run_name == name
  done = binary("decompress", str(compressed), str(decoded), checkpoint_dir=root)
  assert done.returncode == 0, done.stderr
  reconstruction = image_io.read_image(str(decoded))
  assert reconstruction.shape == image.shape
  psnr = 10 * np.log10(255 ** 2 / np.mean(
      (reconstruction.astype(float) - image.astype(float)) ** 2))
  assert psnr == pytest.approx(result["psnr"], abs=1e-9)
  # The file decodes in this process to the same image.
  codec = bi.ImageCodec.load(name, root)
  np.testing.assert_array_equal(codec.decode(compressed.read_bytes())[0],
                                reconstruction)
  again = binary(*args, checkpoint_dir=root)
  assert again.returncode != 0 and "--overwrite" in again.stderr


def test_evaluation_runner_sweeps_lambda_with_one_run(run, tmp_path):
  from tfc_inference.evaluation import rd_curves  # pylint: disable=import-outside-toplevel
  from tfc_inference.evaluation import runner  # pylint: disable=import-outside-toplevel
  root, name = run
  images_dir = tmp_path / "images"
  images_dir.mkdir()
  image_io.write_png(str(images_dir / "img0.png"), synthetic.test_image(64, 96, 3))
  results_dir = str(tmp_path / "results")
  options = options_lib.Options(checkpoint_dir=root, bac_lambdas=[3., 0.03, 0.3])
  with open(os.devnull, "w") as out:
    runner.run_method("bayesian_ac", results_dir, str(images_dir / "*.png"),
                      "bls2017_vae-*", options, out=out)
  columns = rd_curves.read_rd_csv(os.path.join(results_dir, "bayesian_ac.csv"))
  np.testing.assert_array_equal(columns["lmbda"], [0.03, 0.3, 3.])
  assert np.all(np.diff(columns["bpp"]) < 0)  # a larger penalty, fewer bits
  with open(runner.result_path(results_dir, "bayesian_ac",
                               f"{name}{options_lib.BAC_LAMBDA_TAG}0.3", "img0")) as f:
    record = json.load(f)
  assert record["bpp"] == pytest.approx(8 * record["num_bytes"] / (64 * 96))


SHIPPED_VAE_RUNS = [r for r in checkpoints.list_runs(checkpoints.default_checkpoint_dir())
                    if r.startswith(vae.PREFIX + "-")]


@pytest.mark.parametrize("name", SHIPPED_VAE_RUNS)
def test_shipped_vae_run_gives_many_rates_from_one_model(name):
  """The shipped run loads, is described, and codes a generated image exactly at
  every lambda of its fitted grid, with strictly fewer bits as lambda grows."""
  codec = bi.ImageCodec.load(name)
  config = checkpoints.read_config(checkpoints.run_dir(name))  # no second model build
  for key in ("num_filters", "sigma2", "steps", "lr_schedule", "train_data",
              "coding_tables"):
    assert key in config, f"{name}/config.json lacks {key}"
  lambdas = [float(v) for v in codec.tables.settings("bayesian_ac")]
  np.testing.assert_allclose(lambdas, bayesian_ac_tables.DEFAULT_LAMBDAS)
  # The runner keeps its own copy of the grid (it must not import TF).
  assert options_lib.DEFAULT_BAC_LAMBDAS == bayesian_ac_tables.DEFAULT_LAMBDAS
  image = synthetic.test_image(128, 128, seed=5)
  posterior = codec.analyze(image)
  bpp = []
  for lmbda in lambdas:
    data, result, quantized = codec.compress(image, "bayesian_ac", lmbda,
                                             posterior=posterior)
    decoded, info = codec.decode(data)
    np.testing.assert_array_equal(info["values"], quantized.values)
    np.testing.assert_array_equal(
        decoded, codec.reconstruct(quantized.values, image.shape))
    bpp.append(result["bpp"])
  assert len(lambdas) >= 8 and np.all(np.diff(bpp) < 0), bpp
  # Every run spans a wide range; at small sigma2 (runs fine-tuned for iREC's
  # curve) the largest lambda keeps more bits, so the span is a little narrower.
  assert bpp[0] > (10 if config["sigma2"] >= 0.001 else 5) * bpp[-1], bpp
