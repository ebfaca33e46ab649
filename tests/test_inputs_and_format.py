"""Input conversion, metrics, and rejection of bad files."""

import struct
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.util import image_io
from tfc_inference.util import metrics
from tfc_inference.util import synthetic


def _png(array):
  return tf.io.encode_png(array).numpy()


def test_grayscale_palette_alpha_16bit_are_converted(tmp_path):
  rgb = synthetic.test_image(33, 47, seed=1)
  warnings = []
  gray = image_io.decode_image(_png(rgb[..., :1]), warn=warnings.append)
  assert gray.shape == (33, 47, 3) and np.all(gray[..., 0] == gray[..., 2])
  assert warnings == ["<bytes>: grayscale image converted to RGB"]
  rgba = np.concatenate([rgb, np.full((33, 47, 1), 128, np.uint8)], -1)
  out = image_io.decode_image(_png(rgba), warn=warnings.append)
  np.testing.assert_array_equal(out, rgb)
  assert any("alpha" in w for w in warnings)
  sixteen = rgb.astype(np.uint16) * 257
  out = image_io.decode_image(_png(tf.constant(sixteen)), warn=warnings.append)
  np.testing.assert_array_equal(out, rgb)
  assert any("16-bit" in w for w in warnings)


def test_palette_png_is_converted(tmp_path):
  pil = pytest.importorskip("PIL.Image")
  rgb = synthetic.test_image(20, 30, seed=2)
  path = tmp_path / "palette.png"
  pil.fromarray(rgb).convert("P").save(path)
  out = image_io.read_image(str(path), warn=lambda m: None)
  assert out.shape == (20, 30, 3)


def test_bad_inputs_raise_one_line_errors(tmp_path):
  empty = tmp_path / "empty.png"
  empty.write_bytes(b"")
  text = tmp_path / "notes.png"
  text.write_text("not an image at all")
  for path, needle in [(empty, "empty"), (text, "not a readable image"),
                       (tmp_path / "missing.png", "no such file")]:
    with pytest.raises(image_io.ImageError) as error:
      image_io.expand_inputs(str(path))
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_npy_batch_and_glob_inputs(tmp_path):
  batch = synthetic.image_batch(3, 16, 24)
  np.save(tmp_path / "batch.npy", batch)
  inputs = image_io.expand_inputs(str(tmp_path / "batch.npy"))
  assert [n for n, _ in inputs] == ["batch_0000", "batch_0001", "batch_0002"]
  for i in range(2):
    (tmp_path / f"im{i}.png").write_bytes(_png(batch[i]))
  assert len(image_io.expand_inputs(str(tmp_path / "im*.png"))) == 2
  np.save(tmp_path / "bad.npy", batch.astype(np.float32))
  with pytest.raises(image_io.ImageError):
    image_io.expand_inputs(str(tmp_path / "bad.npy"))


def test_padding_and_odd_sizes():
  image = synthetic.test_image(65, 131, seed=4)
  padded = image_io.pad_to_multiple(image)
  assert padded.shape == (128, 192, 3)
  np.testing.assert_array_equal(padded[:65, :131], image)
  assert codec.latent_shapes(image.shape) == ((8, 12), (2, 3))


def test_psnr_and_ms_ssim_fallback():
  a = synthetic.test_image(64, 64, seed=5)
  b = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
  assert metrics.psnr(a, a) == float("inf")
  assert 35 < metrics.psnr(a, b) < 40
  warnings = []
  value = metrics.ms_ssim(a, b, warn=warnings.append)
  assert 0.9 < value <= 1 and warnings  # 64 px is too small for 5 scales
  big = synthetic.test_image(200, 200, seed=6)
  warnings.clear()
  assert metrics.ms_ssim(big, big, warn=warnings.append) == pytest.approx(1.0)
  assert not warnings


def _valid_file(checkpoint_dir, run_names):
  model, _, run_name = checkpoints.load_run(run_names["mbt2018"], checkpoint_dir)
  image = synthetic.test_image(64, 64, seed=8)
  y_hat, z_hat = codec.amortized_latents(model, codec.to_batch(image))
  return model, codec.encode_range_coded(model, run_name, "mbt2018", image, y_hat,
                                         z_hat)


def test_corrupted_and_truncated_files_are_rejected_fast(checkpoint_dir,
                                                         run_names):
  _, data = _valid_file(checkpoint_dir, run_names)
  rng = np.random.default_rng(0)
  start = time.time()
  for position in rng.integers(0, len(data), size=20):
    corrupted = bytearray(data)
    corrupted[position] ^= 0x5A
    with pytest.raises(file_format.FormatError):
      file_format.CompressedFile.from_bytes(bytes(corrupted))
  for length in [0, 3, 10, len(data) // 2, len(data) - 1]:
    with pytest.raises(file_format.FormatError):
      file_format.CompressedFile.from_bytes(data[:length])
  with pytest.raises(file_format.FormatError, match="magic"):
    file_format.CompressedFile.from_bytes(rng.bytes(200))
  assert time.time() - start < 5


def test_wrong_checkpoint_is_rejected(checkpoint_dir, run_names):
  _, data = _valid_file(checkpoint_dir, run_names)
  compressed = file_format.CompressedFile.from_bytes(data)
  other, _, other_name = checkpoints.load_run(run_names["bmshj2018"], checkpoint_dir)
  with pytest.raises(file_format.FormatError, match="garbage"):
    file_format.check_fingerprint(compressed, other.fingerprint(), other_name)


def test_header_round_trip():
  original = file_format.CompressedFile(
      "sga", b"12345678", "run-x", (65, 131), (8, 12), (2, 3), [b"ab", b""],
      extra=struct.pack("<I", 7), digest=123)
  parsed = file_format.CompressedFile.from_bytes(original.to_bytes())
  assert parsed == original


def test_compact_header_of_a_kodak_file_and_older_versions():
  """Version 4 writes lengths and shapes as varints and the words of run names
  as single bytes; a version-3 file of the same fields reads the same."""
  from test_crafted_files import raw_file  # pylint: disable=import-outside-toplevel
  name = "mbt2018-num_filters=64-num_latents=192-lmbda=0.001"
  y, z = [b"y" * 4000], [b"z" * 60]
  original = file_format.CompressedFile(
      "mbt2018", b"12345678", name, (512, 768), (32, 48), (8, 12), y + z,
      digest=5, tile=16)
  data = original.to_bytes()
  assert data[4] == 4
  assert file_format.CompressedFile.from_bytes(data) == original
  payload = sum(len(s) for s in original.strings)
  assert len(data) - payload <= 50  # 104 bytes in version 3
  old = raw_file(file_format.METHODS["mbt2018"], name.encode(),
                 (512, 768, 32, 48, 8, 12), b"",
                 file_format.pack_strings(original.strings), 5, version=3,
                 tile=16)
  old_file = file_format.CompressedFile.from_bytes(old)
  old_file.fingerprint = original.fingerprint
  assert old_file == original
  assert len(old) - payload == 104


@pytest.mark.parametrize("name", [
    "mbt2018_bb-num_filters=128-num_latents=320-lmbda=0.0025",
    "bls2017_vae-num_filters=64-sigma2=0.0003", "run-x", "0.0.0", "lmbda",
    "a" * 200])
def test_run_names_round_trip_through_their_words(name):
  encoded = file_format.encode_run_name(name)
  assert file_format.decode_run_name(encoded) == name
  assert len(encoded) <= len(name)


def test_damaged_compact_header_fields_are_format_errors():
  original = file_format.CompressedFile(
      "sga", b"12345678", "run-x", (65, 131), (8, 12), (2, 3), [b"ab"], digest=1)
  body = original.to_bytes()[:-4]
  prefix = 4 + 2 + 8  # magic, version and method, fingerprint
  for damaged, message in (
      (body[:prefix] + b"\xff" * 6, "runs over"),  # a never-ending varint
      (body[:prefix] + b"\x01\xff" + body[prefix + 7:], "unknown word"),
      (body[:prefix] + b"\x7f" + body[prefix + 1:], "truncated")):
    data = damaged + struct.pack("<I", zlib.crc32(damaged))
    with pytest.raises(file_format.FormatError, match=message):
      file_format.CompressedFile.from_bytes(data)
