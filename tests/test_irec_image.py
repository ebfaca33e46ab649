"""iREC image files (coding.irec_image, examples/irec.py) with a tiny VAE."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import bayesian_ac_image
from tfc_inference.coding import decoding
from tfc_inference.coding import file_format
from tfc_inference.coding import irec
from tfc_inference.coding import irec_image
from tfc_inference.util import image_io
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary(name, *args, checkpoint_dir):
  env = dict(os.environ, TFC_INFERENCE_CHECKPOINTS=checkpoint_dir)
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", name), *args],
      capture_output=True, text=True, env=env, timeout=300)


def test_image_round_trip_costs_about_the_kl(bayesian_ac_run):
  root, name = bayesian_ac_run
  codec = irec_image.IRECImageCodec.load(name, root)
  image = synthetic.test_image(64, 80, seed=4)
  settings = irec.Settings(6., 0.3, beams=3, seed=5)
  data, result = codec.compress(image, settings)
  decoded, info = codec.decode(data)
  assert info["settings"] == settings
  psnr = 10 * np.log10(255 ** 2 / np.mean((decoded.astype(float) - image) ** 2))
  assert psnr == pytest.approx(result["psnr"], abs=1e-9)
  assert result["bpp"] == pytest.approx(8 * len(data) / (64 * 80))
  # Index bits follow the KL: (1 + extra_samples) times it, plus the rounding of
  # each channel's mean KL to 1/8 bit, which is large for this tiny latent
  # (about 350 bits of KL; measured 1.33-1.44). The file adds its header.
  assert 1.1 < result["index_bpp"] / result["kl_bpp"] < 1.9
  image_bits, _ = decoding.decode(data, checkpoint_dir=root)
  np.testing.assert_array_equal(image_bits, decoded)


def test_binary_compresses_and_decodes_in_separate_processes(bayesian_ac_run,
                                                             tmp_path):
  root, name = bayesian_ac_run
  image = synthetic.test_image(70, 90, seed=21)
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  compressed, decoded = tmp_path / "in.tfci", tmp_path / "out.png"
  results = tmp_path / "results"
  done = binary("irec.py", "compress", name, str(source), str(compressed),
                "--kl_per_block=6", "--beams=2", "--seed=7",
                f"--results_dir={results}", checkpoint_dir=root)
  assert done.returncode == 0, done.stderr
  with open(results / "in.json") as f:
    result = json.load(f)
  assert result["method"] == "irec" and result["seed"] == 7
  assert result["bpp"] == pytest.approx(8 * os.path.getsize(compressed) / (70 * 90))
  for key in ("kl_bpp", "psnr", "ms_ssim", "seconds", "decode_seconds"):
    assert np.isfinite(result[key]), key
  done = binary("irec.py", "decompress", str(compressed), str(decoded),
                checkpoint_dir=root)
  assert done.returncode == 0, done.stderr
  reconstruction = image_io.read_image(str(decoded))
  psnr = 10 * np.log10(255 ** 2 / np.mean(
      (reconstruction.astype(float) - image.astype(float)) ** 2))
  assert psnr == pytest.approx(result["psnr"], abs=1e-9)
  codec = irec_image.IRECImageCodec.load(name, root)
  np.testing.assert_array_equal(codec.decode(compressed.read_bytes())[0],
                                reconstruction)
  # Each method's files name the binary that decodes them.
  done = binary("bayesian_ac.py", "decompress", str(compressed),
                str(tmp_path / "x.png"), checkpoint_dir=root)
  assert done.returncode != 0 and "irec.py" in done.stderr
  bac = bayesian_ac_image.ImageCodec.load(name, root)
  other = tmp_path / "bac.tfci"
  other.write_bytes(bac.compress(image, "bayesian_ac", 0.1)[0])
  done = binary("irec.py", "decompress", str(other), str(tmp_path / "y.png"),
                checkpoint_dir=root)
  assert done.returncode != 0 and "bayesian_ac.py" in done.stderr


def test_bad_settings_fail_before_any_work(bayesian_ac_run, tmp_path):
  root, name = bayesian_ac_run
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(synthetic.test_image(32, 32, 1)).numpy())
  done = binary("irec.py", "compress", name, str(source), "--kl_per_block=40",
                checkpoint_dir=root)
  assert done.returncode != 0 and "kl_per_block" in done.stderr
  assert "Traceback" not in done.stderr
  assert not (tmp_path / "in.tfci").exists()


def test_header_settings_are_checked(bayesian_ac_run):
  root, name = bayesian_ac_run
  codec = irec_image.IRECImageCodec.load(name, root)
  data, _ = codec.compress(synthetic.test_image(40, 40, seed=2),
                           irec.Settings(6., 0.2, seed=1))
  parsed = file_format.CompressedFile.from_bytes(data)
  assert irec_image.check_header(parsed) == irec.Settings(6., 0.2, seed=1)
  for extra in (b"", irec_image._EXTRA.pack(25., 0.2, 1, 1, 4)):  # pylint: disable=protected-access
    with pytest.raises(file_format.FormatError):
      irec_image.check_header(dataclasses.replace(parsed, extra=extra))


def test_evaluation_runner_codes_one_point_per_vae_run(bayesian_ac_run, tmp_path):
  from tfc_inference.evaluation import options as options_lib  # pylint: disable=import-outside-toplevel
  from tfc_inference.evaluation import rd_curves  # pylint: disable=import-outside-toplevel
  from tfc_inference.evaluation import runner  # pylint: disable=import-outside-toplevel
  root, name = bayesian_ac_run
  images_dir = tmp_path / "images"
  images_dir.mkdir()
  image_io.write_png(str(images_dir / "img0.png"), synthetic.test_image(64, 80, 3))
  results_dir = str(tmp_path / "results")
  options = options_lib.Options(checkpoint_dir=root, irec_kl_per_block=6.,
                                irec_beams=2, seed=3)
  with open(os.devnull, "w") as out:
    runner.run_method("irec", results_dir, str(images_dir / "*.png"), None,
                      options, out=out)
  with open(runner.result_path(results_dir, "irec", name, "img0")) as f:
    record = json.load(f)
  assert (record["kl_per_block"], record["beams"], record["seed"]) == (6., 2, 3)
  assert record["bpp"] == pytest.approx(8 * record["num_bytes"] / (64 * 80))
  assert record["bpp"] > record["kl_bpp"] > 0
  columns = rd_curves.read_rd_csv(os.path.join(results_dir, "irec.csv"))
  sigma2 = irec_image.IRECImageCodec.load(name, root).codec.model.sigma2
  np.testing.assert_allclose(columns["lmbda"], [sigma2])
  np.testing.assert_allclose(columns["bpp"], [record["bpp"]])
  with pytest.raises(options_lib.UserError, match="kl_per_block"):
    options_lib.Options(irec_kl_per_block=30.).validate()


def test_vae_runs_take_comma_separated_globs(tmp_path):
  from tfc_inference.evaluation import options as options_lib  # pylint: disable=import-outside-toplevel
  from tfc_inference.evaluation import registry  # pylint: disable=import-outside-toplevel
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  names = [f"bls2017_vae-num_filters=8-sigma2={s}" for s in ("0.001", "0.003", "0.01")]
  for name in names:
    (tmp_path / name).mkdir()
    (tmp_path / name / checkpoints.WEIGHTS_FILE).write_bytes(b"")
    (tmp_path / name / checkpoints.CONFIG_FILE).write_text("{}")
  options = options_lib.Options(checkpoint_dir=str(tmp_path))
  for method in ("irec", "bayesian_ac"):
    runs = registry.get_method(method).list_runs(options, f"{names[2]},{names[0]}")
    assert sorted({run.split(options_lib.BAC_LAMBDA_TAG)[0] for run in runs}) == [names[0], names[2]], method
  with pytest.raises(options_lib.UserError, match="matches no"):
    registry.get_method("irec").list_runs(options, "bls2017_vae-*=0.5")
