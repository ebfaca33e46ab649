"""Round trips of the three model families through real files."""

import numpy as np
import pytest

from tfc_inference.coding import bits_back
from tfc_inference.coding import codec
from tfc_inference.coding import decoding
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.models import hyperprior
from tfc_inference.models import widening

RANGE_CODED = ["mbt2018", "bmshj2018"]


def _encode_amortized(model, run_name, method, image):
  x = codec.to_batch(image)
  y_hat, z_hat = codec.amortized_latents(model, x)
  estimate = model.true_rd(x, y_hat, z_hat, valid_shape=image.shape[:2])
  data = codec.encode_range_coded(model, run_name, method, image, y_hat, z_hat)
  return data, y_hat, estimate


@pytest.mark.parametrize("prefix", RANGE_CODED)
def test_range_coded_round_trip_is_exact(prefix, checkpoint_dir, run_names,
                                         test_image):
  model, _, run_name = checkpoints.load_run(run_names[prefix], checkpoint_dir)
  data, y_hat, estimate = _encode_amortized(model, run_name, prefix, test_image)
  x_hat_encoder = model.synthesize(y_hat)[0, :100, :140].numpy()
  compressed = file_format.CompressedFile.from_bytes(data)
  decoded_y, image = codec.range_coded_decode_fn(model, compressed)
  np.testing.assert_array_equal(decoded_y, y_hat.numpy())
  np.testing.assert_array_equal(image, np.round(np.clip(x_hat_encoder, 0, 255)))
  assert image.shape == test_image.shape


def test_bits_back_round_trip_recovers_side_info(checkpoint_dir, run_names,
                                                 test_image):
  model, _, run_name = checkpoints.load_run(run_names["mbt2018_bb"], checkpoint_dir)
  y, _ = model.analyze(codec.to_batch(test_image))
  y_hat = np.round(y.numpy())
  side_info = bytes(range(256)) * 3
  data, info = bits_back.encode_file(model, run_name, "mbt2018_bb", test_image,
                                     y_hat, side_info=side_info)
  compressed = file_format.CompressedFile.from_bytes(data)
  image, decoded = bits_back.decode_file(model, compressed)
  np.testing.assert_array_equal(decoded["y_hat"], y_hat)
  assert decoded["side_info"] == side_info
  assert image.shape == test_image.shape
  expected = model.synthesize(y_hat)[0, :100, :140].numpy()
  np.testing.assert_array_equal(image, np.round(np.clip(expected, 0, 255)))
  assert info["side_info_bits"] == 8 * len(side_info)


@pytest.mark.parametrize("length", [0, 5, 4096])
def test_bits_back_side_info_lengths(length, checkpoint_dir, run_names,
                                     test_image):
  model, _, run_name = checkpoints.load_run(run_names["mbt2018_bb"], checkpoint_dir)
  y, _ = model.analyze(codec.to_batch(test_image))
  side_info = bits_back.random_side_info(8 * length, seed=7)
  data, info = bits_back.encode_file(model, run_name, "mbt2018_bb", test_image,
                                     np.round(y.numpy()), side_info=side_info)
  _, decoded = bits_back.decode_file(model, file_format.CompressedFile.from_bytes(data))
  assert decoded["side_info"] == side_info
  needed = info["side_info_needed_bits"]
  assert (info["padding_bits"] > 0) == (8 * length < needed)


def test_decode_dispatch_for_all_families(checkpoint_dir, run_names, test_image):
  for prefix in ["mbt2018", "bmshj2018"]:
    model, _, run_name = checkpoints.load_run(run_names[prefix], checkpoint_dir)
    data, _, _ = _encode_amortized(model, run_name, prefix, test_image)
    image, _ = decoding.decode_parsed(file_format.CompressedFile.from_bytes(data),
                                      model)
    assert image.shape == test_image.shape


@pytest.mark.parametrize("prefix", RANGE_CODED)
def test_runs_with_a_wider_y_round_trip(prefix, checkpoint_dir, run_names,
                                        test_image, tmp_path):
  """A run with num_latents > num_filters (widened from a tiny run) is saved,
  loaded by its config and decodes its files exactly."""
  narrow, config, _ = checkpoints.load_run(run_names[prefix], checkpoint_dir)
  wide = hyperprior.MODEL_CLASSES[prefix](
      lmbda=narrow.lmbda, num_filters=narrow.num_filters, num_latents=12)
  wide.build_all()
  wide.set_weight_arrays(widening.widen(wide, narrow.weight_arrays()))
  name = hyperprior.run_name(prefix, narrow.num_filters, narrow.lmbda, 12)
  (tmp_path / name).mkdir()
  checkpoints.save_weights(wide, str(tmp_path / name))
  checkpoints.write_config(str(tmp_path / name), dict(config, num_latents=12))
  model, _, run_name = checkpoints.load_run(name, str(tmp_path))
  assert run_name == name and model.num_latents == 12
  data, y_hat, _ = _encode_amortized(model, run_name, prefix, test_image)
  assert y_hat.shape[-1] == 12
  image, _ = decoding.decode_parsed(file_format.CompressedFile.from_bytes(data),
                                    model)
  expected = model.synthesize(y_hat)[0, :100, :140].numpy()
  np.testing.assert_array_equal(image, np.round(np.clip(expected, 0, 255)))
