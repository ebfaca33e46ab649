"""Decoders survive crafted files whose CRC-32 is valid (a seeded fuzzer).

Every case must end in a one-line `FormatError` / `CheckpointError`, or decode to
an image of the header's size that equals the true decode (cropped to that size),
within a time bound, without reading a run outside the checkpoint folder.
"""

import dataclasses
import os
import struct
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.coding import bayesian_ac_image as bi
from tfc_inference.coding import bits_back
from tfc_inference.coding import codec
from tfc_inference.coding import decoding
from tfc_inference.coding import file_format
from tfc_inference.coding import irec
from tfc_inference.coding import irec_image
from tfc_inference.models import checkpoints
from tfc_inference.util import synthetic

CASES_PER_FILE = 70
# A bound that catches hangs (a header once made the decoder run 65535 BBVI
# iterations); a bits-back decode that traces BBVI takes ~5 s on a loaded machine.
SECONDS_PER_CASE = 60.
ACCEPTED = (file_format.FormatError, checkpoints.CheckpointError)


def raw_file(method_id, run_name_bytes, shapes, extra, payload, digest=0,
             version=2, tile=0):
  """Container bytes of version 1-3 (fixed-width fields) built field by field
  (any values), with a valid CRC."""
  body = b"".join([
      file_format.MAGIC, struct.pack("<BB", version, method_id), b"\0" * 8,
      struct.pack("<H", len(run_name_bytes)), run_name_bytes,
      struct.pack("<6H", *shapes), struct.pack("<H", len(extra)), extra,
      struct.pack("<I", digest) if version >= 2 else b"",
      struct.pack("<H", tile) if version >= 3 else b"",
      struct.pack("<I", len(payload)), payload])
  return body + struct.pack("<I", zlib.crc32(body))


class Loader:
  """Caches loaded runs; asserts every name stays inside the checkpoint folder."""

  def __init__(self, roots):
    self.roots, self.cache, self.names = roots, {}, []

  def __call__(self, name, checkpoint_dir):
    assert os.sep not in name and ".." not in name, name
    self.names.append(name)
    for root, bayesian in self.roots:
      if os.path.isdir(os.path.join(root, name)):
        if name not in self.cache:
          self.cache[name] = decoding.load_named_run(name, root, bayesian)
        return self.cache[name]
    raise checkpoints.CheckpointError(f"no run {name!r}")


def valid_files(checkpoint_dir, run_names, bayesian_ac_run):
  """(label, bytes) of one real file per decoder family."""
  image = synthetic.test_image(70, 90, seed=11)
  files = []
  for prefix in ("mbt2018", "bmshj2018"):
    model, _, name = checkpoints.load_run(run_names[prefix], checkpoint_dir)
    y_hat, z_hat = codec.amortized_latents(model, codec.to_batch(image))
    files.append((prefix, codec.encode_range_coded(model, name, prefix, image,
                                                   y_hat, z_hat)))
  model, _, name = checkpoints.load_run(run_names["mbt2018_bb"], checkpoint_dir)
  y, _ = model.analyze(codec.to_batch(image))
  data, _ = bits_back.encode_file(model, name, "bb_no_sga", image,
                                  np.round(y.numpy()), bbvi_its=3)
  files.append(("bits-back", data))
  bac = bi.ImageCodec.load(bayesian_ac_run[1], bayesian_ac_run[0])
  data, _, _ = bac.compress(image, "bayesian_ac", 0.03)
  files.append(("bayesian_ac", data))
  data, _ = irec_image.IRECImageCodec(bac).compress(
      image, irec.Settings(6., 0.2, beams=2, seed=3))
  files.append(("irec", data))
  return files


def mutations(data, rng):
  """Yields (description, crafted bytes, must be rejected) for one valid file."""
  original = file_format.CompressedFile.from_bytes(data)
  height, width = original.image_shape

  def rebuilt(**changes):
    return dataclasses.replace(original, **changes).to_bytes()

  def raw(method=None, name=None, shapes=None, extra=None, payload=None,
          digest=None):
    return raw_file(
        file_format.METHODS[original.method] if method is None else method,
        original.run_name.encode() if name is None else name,
        (*original.image_shape, *original.y_shape, *original.z_shape)
        if shapes is None else shapes,
        original.extra if extra is None else extra,
        file_format.pack_strings(original.strings) if payload is None else payload,
        original.digest if digest is None else digest)

  # Run names that are paths or not names at all.
  for name in (b"/tmp/x/evil", b"../" + original.run_name.encode(), b"a/../b",
               b"\xff\xfe", b"", b"no-such-run", b"."):
    yield f"run name {name!r}", raw(name=name), True
  # Relabelled methods.
  for method_id in file_format.METHOD_NAMES:
    yield f"method {method_id}", raw(method=method_id), False
  # Shapes: empty, huge, inconsistent, consistent but cropped.
  for shapes in ((0, 0, 0, 0, 0, 0), (65535, 65535, 65535, 65535, 65535, 65535),
                 (height, width, 65535, 65535, 0, 0),
                 (height, width, *original.y_shape, 65535, 65535),
                 (16, 16, *original.y_shape, *original.z_shape)):
    yield f"shapes {shapes}", raw(shapes=shapes), True
  yield "a 1x1 image", raw(shapes=(1, 1, 4, 4, 1, 1)), False
  # Tiles: below the minimum; larger than the image (one tile: the true decode).
  yield "tile 1", rebuilt(tile=1), True
  yield "tile 65535", rebuilt(tile=65535), False
  for _ in range(4):  # smaller images with the same latent shapes: a valid crop
    yield "cropped image", rebuilt(image_shape=(
        int(rng.integers(max(1, height - 63), height + 1)),
        int(rng.integers(max(1, width - 63), width + 1)))), False
  # Method headers: random bytes, and each field set to extremes.
  for size in (0, 1, len(original.extra), len(original.extra) + 3):
    yield f"extra of {size} random bytes", raw(extra=rng.bytes(size)), False
  if original.method in decoding.BITS_BACK_METHODS:
    header = bits_back.SideInfoHeader.from_bytes(original.extra)
    for field, value in (("bbvi_its", 65535), ("bbvi_lr", float("nan")),
                         ("bbvi_lr", float("inf")), ("bbvi_lr", -1.),
                         ("y_min", header.y_max), ("y_max", header.y_min - 5),
                         ("pad_words", 2 ** 31), ("side_info_bytes", 2 ** 31),
                         ("z_kmin", header.z_kmax), ("grid_bits", 9)):
      changed = dataclasses.replace(header, **{field: value})
      yield f"bits-back {field}={value}", raw(extra=changed.to_bytes()), True
    changed = dataclasses.replace(header, bbvi_its=header.bbvi_its + 1)
    # Another q(z | y): the image decodes, the side information fails.
    yield "bits-back bbvi_its + 1", raw(extra=changed.to_bytes()), False
  if original.method in decoding.BAYESIAN_AC_METHODS:
    header = bi._EXTRA  # pylint: disable=protected-access
    quantizer, setting, index = header.unpack(original.extra)
    for q, s, i in ((quantizer, setting, 0), (quantizer, setting, 65535),
                    (9, setting, index), (quantizer, float("nan"), index),
                    (2, setting, index), (3, setting, 0)):
      yield (f"bayesian_ac header {(q, s, i)}", raw(extra=header.pack(q, s, i)),
             (q, s, i) != (quantizer, setting, index))
  if original.method in decoding.IREC_METHODS:
    header = irec_image._EXTRA  # pylint: disable=protected-access
    omega, epsilon, beams, seed, steps = header.unpack(original.extra)
    for fields in ((omega, epsilon, beams, seed + 1, steps),  # another seed
                   (omega + 1., epsilon, beams, seed, steps),  # another plan
                   (0., epsilon, beams, seed, steps), (float("nan"), epsilon,
                                                       beams, seed, steps),
                   (omega, epsilon, 0, seed, steps), (omega, 5., beams, seed, steps),
                   (omega, epsilon, beams, seed, 0)):
      yield f"irec header {fields}", raw(extra=header.pack(*fields)), True
    # The beam width is the encoder's business: the file still decodes.
    yield "irec header, other beams", raw(extra=header.pack(
        omega, epsilon, beams + 3, seed, steps)), False
  # Payloads: empty, truncated, extended, random, swapped, bit flips.
  strings = list(original.strings)
  for i, string in enumerate(strings):
    for label, new in (("empty", b""), ("half", string[:len(string) // 2]),
                       ("extended", string + rng.bytes(5)),
                       ("random", rng.bytes(max(1, len(string)))),
                       ("zeros", b"\0" * len(string))):
      yield (f"string {i} {label}",
             rebuilt(strings=strings[:i] + [new] + strings[i + 1:]),
             label != "extended" and new != string)
  yield "strings swapped", rebuilt(strings=strings[::-1]), strings[::-1] != strings
  yield "one string more", rebuilt(strings=strings + [b"abc"]), True
  yield "digest changed", rebuilt(digest=(original.digest + 1) % 2 ** 32), True
  while True:
    i = int(rng.integers(len(strings)))
    if strings[i]:
      flipped = bytearray(strings[i])
      position = int(rng.integers(len(flipped)))
      flipped[position] ^= 1 << int(rng.integers(8))
      yield f"string {i} bit flip at {position}", rebuilt(
          strings=strings[:i] + [bytes(flipped)] + strings[i + 1:]), False


@pytest.mark.slow
def test_crafted_files_fail_cleanly_or_decode_exactly(checkpoint_dir, run_names,
                                                      bayesian_ac_run):
  tf.keras.utils.set_random_seed(0)
  loader = Loader([(checkpoint_dir, False), (bayesian_ac_run[0], True)])
  rng = np.random.default_rng(1234)
  outcomes = {"rejected": 0, "decoded": 0}
  for label, data in valid_files(checkpoint_dir, run_names, bayesian_ac_run):
    reference, _ = decoding.decode(data, loader=loader)
    crafted = mutations(data, rng)
    for _ in range(CASES_PER_FILE):
      what, case, must_reject = next(crafted)
      start = time.time()
      try:
        image, _ = decoding.decode(case, loader=loader)
      except ACCEPTED as error:
        message = str(error)
        assert message and "\n" not in message, (label, what, message)
        outcomes["rejected"] += 1
      else:
        assert not must_reject, (label, what)
        header = file_format.CompressedFile.from_bytes(case)
        assert image.shape == (*header.image_shape, 3), (label, what)
        # Same latents (the digest matched), so the true decode, cropped.
        height, width = header.image_shape
        np.testing.assert_array_equal(
            image, reference[:height, :width], err_msg=f"{label}: {what}")
        outcomes["decoded"] += 1
      assert time.time() - start < SECONDS_PER_CASE, (label, what)
  assert outcomes["rejected"] + outcomes["decoded"] == 5 * CASES_PER_FILE
  assert all(os.sep not in name for name in loader.names)
