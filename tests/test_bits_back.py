"""Lossy bits-back coding with reproducible BBVI (Algorithm 1) on a tiny model."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tfc_inference.coding import bits_back
from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.inference import bbvi
from tfc_inference.models import checkpoints
from tfc_inference.models import hyperprior
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BBVI_ITS = 40


@pytest.fixture(scope="module")
def bb_model(checkpoint_dir, run_names):
  return checkpoints.load_run(run_names["mbt2018_bb"], checkpoint_dir)


def _encode(bb_model, image, side_info, bbvi_its=BBVI_ITS):
  model, _, run_name = bb_model
  y, _ = model.analyze(codec.to_batch(image))
  y_hat = np.round(y.numpy())
  data, info = bits_back.encode_file(model, run_name, "bb_no_sga", image, y_hat,
                                     side_info=side_info, bbvi_its=bbvi_its)
  return data, info, y_hat


def test_reproducible_bbvi_is_deterministic_and_improves_elbo(bb_model):
  model, _, _ = bb_model
  image = synthetic.test_image(64, 64, seed=4)
  y, _ = model.analyze(codec.to_batch(image))
  y_hat = np.round(y.numpy())
  first = bbvi.reproducible_bbvi(model, y_hat, iterations=BBVI_ITS)
  second = bbvi.reproducible_bbvi(model, y_hat, iterations=BBVI_ITS)
  np.testing.assert_array_equal(first[0], second[0])
  np.testing.assert_array_equal(first[1], second[1])
  amortized = bbvi.reproducible_bbvi(model, y_hat, iterations=0)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def expected_net_bits(mean, log_var):
    eps = tf.random.stateless_normal((64,) + mean.shape[1:], [5, 6])
    z = mean + np.exp(0.5 * log_var) * eps
    y_rep = tf.repeat(tf.constant(y_hat, tf.float32), 64, axis=0)
    return float(tf.reduce_mean(bbvi.net_bits(model, y_rep, z, mean, log_var)))

  assert expected_net_bits(*first) < expected_net_bits(*amortized)


def test_bbvi_file_decodes_with_side_info_in_separate_process(bb_model, tmp_path,
                                                              checkpoint_dir):
  model, _, run_name = bb_model
  image = synthetic.test_image(64, 80, seed=5)
  side_info = os.urandom(300)
  data, _, y_hat = _encode(bb_model, image, side_info)
  path = tmp_path / "f.tfci"
  path.write_bytes(data)
  script = (
      "import sys, numpy as np\n"
      "from tfc_inference.coding import bits_back, file_format\n"
      "from tfc_inference.models import checkpoints\n"
      f"model, _, _ = checkpoints.load_run({run_name!r}, {checkpoint_dir!r})\n"
      f"image, info = bits_back.decode_file(model, file_format.read_file({str(path)!r}))\n"
      "sys.stdout.buffer.write(info['side_info'] or b'FAILED')\n")
  done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                        timeout=300, cwd=ROOT,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 0, done.stderr.decode()
  assert done.stdout == side_info


def _tamper_side_info_crc(data):
  """Flips the side-information checksum in the header, keeping the file CRC valid."""
  compressed = file_format.CompressedFile.from_bytes(data)
  header = bits_back.SideInfoHeader.from_bytes(compressed.extra)
  header.side_info_crc ^= 1
  compressed.extra = header.to_bytes()
  return compressed


def test_tampered_side_info_checksum_is_reported_and_image_decodes(bb_model):
  model, _, _ = bb_model
  image = synthetic.test_image(64, 64, seed=6)
  data, _, y_hat = _encode(bb_model, image, b"hello bits-back", bbvi_its=0)
  decoded_image, info = bits_back.decode_file(model, _tamper_side_info_crc(data))
  assert info["side_info"] is None and not info["side_info_ok"]
  assert any("FAILED" in m for m in info["messages"])
  np.testing.assert_array_equal(info["y_hat"], y_hat)
  assert decoded_image.shape == image.shape


def test_side_info_longer_than_needed_is_returned_whole(bb_model):
  model, _, _ = bb_model
  image = synthetic.test_image(64, 64, seed=7)
  side_info = bits_back.random_side_info(200000, seed=3)
  data, info, _ = _encode(bb_model, image, side_info, bbvi_its=0)
  assert info["padding_bits"] == 0
  _, decoded = bits_back.decode_file(model, file_format.CompressedFile.from_bytes(data))
  assert decoded["side_info"] == side_info
  # Net cost stays small: the file holds xi plus roughly the net rate.
  assert 8 * len(data) - 8 * len(side_info) < 0.2 * 8 * len(side_info)


def test_header_fields_round_trip():
  header = bits_back.SideInfoHeader(10, zlib.crc32(b"x"), 3, 7, 5, -4, 9, -100, 200,
                                    2000, float(np.float32(0.003)), 1,
                                    bbvi.LIKELIHOOD_TWO_LOG_CDFS)
  assert bits_back.SideInfoHeader.from_bytes(header.to_bytes()) == header
  # Headers written before the likelihood field: tfc's four log-CDFs.
  old = bits_back.SideInfoHeader.from_bytes(header.to_bytes()[:-1])
  assert old.bbvi_likelihood == bbvi.LIKELIHOOD_FOUR_LOG_CDFS
  header.bbvi_likelihood = 7
  with pytest.raises(file_format.FormatError, match="bbvi_likelihood 7"):
    bits_back.SideInfoHeader.from_bytes(header.to_bytes()).check(100)
  with pytest.raises(file_format.FormatError):
    bits_back.SideInfoHeader.from_bytes(struct.pack("<I", 1))


def test_both_likelihoods_agree_and_old_files_still_decode(bb_model):
  """BBVI's forms of log p(y | z) agree to float rounding, and a file
  written before the header recorded the form (tfc's four log-CDFs, header
  without the field) or with an older form decodes with the form it was
  written with."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  model, _, run_name = bb_model
  image = synthetic.test_image(64, 64, seed=8)
  y_hat = np.round(model.analyze(codec.to_batch(image))[0].numpy())
  mean, log_var = bbvi.reproducible_bbvi(model, y_hat, iterations=0)
  z = mean + 0.3 * np.exp(0.5 * log_var)
  bits = [float(bbvi.net_bits(model, tf.constant(y_hat, tf.float32), z, mean,
                              log_var, likelihood=likelihood)[0])
          for likelihood in bbvi.LIKELIHOODS]
  for other in bits[1:]:
    assert other == pytest.approx(bits[0], rel=1e-5)
  side_info = os.urandom(200)
  data, _ = bits_back.encode_file(
      model, run_name, "bb_no_sga", image, y_hat, side_info=side_info,
      bbvi_its=BBVI_ITS, bbvi_likelihood=bbvi.LIKELIHOOD_FOUR_LOG_CDFS)
  compressed = file_format.CompressedFile.from_bytes(data)
  compressed.extra = compressed.extra[:-1]  # the header's layout before the field
  _, info = bits_back.decode_file(
      model, file_format.CompressedFile.from_bytes(compressed.to_bytes()))
  assert info["side_info"] == side_info
  # Files of the unfused two-log-CDF form (2026-12-04 to -06) decode with it.
  data, _ = bits_back.encode_file(
      model, run_name, "bb_no_sga", image, y_hat, side_info=side_info,
      bbvi_its=BBVI_ITS, bbvi_likelihood=bbvi.LIKELIHOOD_TWO_LOG_CDFS)
  compressed = file_format.CompressedFile.from_bytes(data)
  assert (bits_back.SideInfoHeader.from_bytes(compressed.extra).bbvi_likelihood
          == bbvi.LIKELIHOOD_TWO_LOG_CDFS)
  _, info = bits_back.decode_file(model, compressed)
  assert info["side_info"] == side_info


def test_models_can_be_built_after_determinism_is_enabled():
  # Evaluating several bits-back runs in one process (evaluate.py, the checkpoint
  # benchmark) builds models after BBVI switched on op determinism.
  bbvi.configure_determinism()
  bbvi.configure_determinism()
  for _ in range(2):
    model = hyperprior.BitsBackHyperprior(lmbda=0.01, num_filters=8)
    assert model.hyperprior is not None


def test_rate_estimate_charges_each_symbol_at_most_the_coder_precision(bb_model):
  """A z drawn from Q's leaky floor (random side information on a 1-pixel image
  once gave est_bpp -15918) costs the stack coder at most 24 bits, so the
  estimate charges no more: it stays within 24 bits per symbol either way."""
  assert bits_back._coded_bits([-1., -100., -3.5]) == pytest.approx(1. + 24. + 3.5)  # pylint: disable=protected-access
  model, _, run_name = bb_model
  image = np.full((1, 1, 3), 120, np.uint8)
  y, _ = model.analyze(codec.to_batch(image))
  _, info = bits_back.encode_file(model, run_name, "bb_plain", image,
                                  np.round(y.numpy()))
  symbols = 2 * int(np.prod(y.shape))  # every y and z latent
  assert -24 * symbols < info["est_net_bits"] < 24 * symbols
