"""The compressed-file container shared by every method.

Layout of version 4 (fixed-width integers little-endian; `varint`: unsigned
LEB128, 7 bits a byte, at most 5 bytes):

  magic        4 bytes  b"TFCI"
  version      u8       FORMAT_VERSION
  method       u8       id from METHODS
  fingerprint  8 bytes  digest of the model weights (`HyperpriorModel.fingerprint`)
  run name     varint length + the name with the words of RUN_NAME_WORDS as one
               byte each (the checkpoint run that encoded the file)
  shapes       6 varints: image height, width (before padding), y height, width,
               z height, width
  extra        varint length + bytes (method-specific metadata, e.g. bits-back
               bookkeeping)
  digest       u32 CRC-32 of the coded integer symbols (`latents_digest`)
  tile         varint tile size in latent pixels of the encoder's synthesis (0:
               whole image; `models.tiling`), which the decoder repeats
  payload      varint count of byte strings, then varint length + bytes each
  checksum     u32 CRC-32 of everything above

Versions 1-3 wrote the lengths and shapes as fixed u16/u32 fields and the run
name as it is: a Kodak file carried about 100 bytes of container, which at 0.1 bpp
is 2% of the file; version 4 carries about 50 (`tests/test_inputs_and_format.py`).
Version 1 (no digest), 2 (no tile) and 3 files are still read (`_read_fields_v1_to_3`).

The checksum is verified before anything is entropy decoded, because tfc's range
decoder can loop for a long time on random bytes. A CRC guards against accidents
only (anyone can recompute it), so everything read from a file is also validated
before it drives any work: the run name must be a plain name (it is looked up only
inside the checkpoint folder), shapes must agree with each other and stay below a
pixel limit (`check_geometry`), method headers are checked by their decoders, and
the decoded symbols must match `digest`, so a damaged payload fails instead of
decoding to a wrong image. Files of version 1 and 2 read as untiled.
"""

import contextlib
import dataclasses
import struct
from typing import Optional
import zlib

import numpy as np

from tfc_inference.models import checkpoints
from tfc_inference.models import tiling

MAGIC = b"TFCI"
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
# Decoding allocates roughly 200 bytes per pixel at 64 filters; 2**25 pixels
# (e.g. 8192 x 4096) stays within a few GiB. Binaries raise it with --max_pixels.
DEFAULT_MAX_PIXELS = 2 ** 25

# Stable ids: never renumber, only append.
METHODS = {
    "mbt2018": 1, "bmshj2018": 2, "mbt2018_bb": 3,
    "sga": 4, "map": 5, "ste": 6, "unoise": 7, "danneal": 8,
    "bb_sga": 9, "bb_no_sga": 10, "bb_plain": 11, "bayesian_ac": 12, "irec": 13,
}
METHOD_NAMES = {v: k for k, v in METHODS.items()}
# Words of run names written as one byte each (0x80 + position) from version 4
# on. Run names are ASCII, so these bytes stand for nothing else. Never reorder,
# only append (at most 128).
RUN_NAME_WORDS = ("mbt2018_bb", "mbt2018", "bmshj2018", "bls2017_vae",
                  "-num_filters=", "-num_latents=", "-lmbda=", "-sigma2=", "0.0")
_WORD_BYTE = 0x80
_VARINT_MAX_BYTES = 5
# The binary (in examples/) whose `decompress` decodes each method's files.
DECODER_BINARY = dict(
    {m: "mbt2018.py" for m in ("mbt2018", "bmshj2018", "sga", "map", "ste",
                               "unoise", "danneal")},
    **{m: "mbt2018_bb.py" for m in ("mbt2018_bb", "bb_sga", "bb_no_sga",
                                    "bb_plain")},
    bayesian_ac="bayesian_ac.py", irec="irec.py")


def wrong_binary_error(path, method):
  return FormatError(f"{path}: a {method!r} file; decode it with "
                     f"examples/{DECODER_BINARY[method]} decompress")


class FormatError(ValueError):
  """A file that is not a valid, intact tfc-inference file."""


@dataclasses.dataclass
class CompressedFile:
  method: str
  fingerprint: bytes
  run_name: str
  image_shape: tuple  # (height, width)
  y_shape: tuple  # (height, width)
  z_shape: tuple  # (height, width)
  strings: list  # list of bytes
  extra: bytes = b""
  digest: Optional[int] = None  # `latents_digest` of the coded symbols
  tile: int = 0  # latent pixels per synthesis tile (0: untiled)

  def to_bytes(self):
    if self.method not in METHODS:
      raise ValueError(f"Unknown method {self.method!r}.")
    if len(self.fingerprint) != 8:
      raise ValueError("Fingerprint must be 8 bytes.")
    if self.digest is None:
      raise ValueError("A file needs the digest of its coded symbols.")
    check_run_name(self.run_name)
    name = encode_run_name(self.run_name)
    body = b"".join([
        MAGIC, struct.pack("<BB", FORMAT_VERSION, METHODS[self.method]),
        self.fingerprint, varint(len(name)), name,
        *map(varint, (*self.image_shape, *self.y_shape, *self.z_shape)),
        varint(len(self.extra)), self.extra,
        struct.pack("<I", self.digest), varint(self.tile),
        varint(len(self.strings)),
        *(varint(len(s)) + bytes(s) for s in self.strings),
    ])
    return body + struct.pack("<I", zlib.crc32(body))

  def check_digest(self, *symbols):
    """Raises FormatError unless the decoded integer `symbols` are those coded."""
    if self.digest is not None and latents_digest(*symbols) != self.digest:
      raise FormatError("the payload does not decode to the coded latents "
                        "(digest mismatch): the file is damaged")

  @classmethod
  def from_bytes(cls, data):
    if len(data) < 4 or data[:4] != MAGIC:
      raise FormatError("not a tfc-inference compressed file (bad magic number)")
    if len(data) < 8:
      raise FormatError("file is truncated")
    body, (checksum,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != checksum:
      raise FormatError("checksum mismatch: the file is corrupted or truncated")
    reader = _Reader(body, 4)
    version, method_id = reader.unpack("<BB")
    if version not in READABLE_VERSIONS:
      raise FormatError(f"file format version {version} is not supported "
                        f"(this library reads versions {READABLE_VERSIONS})")
    if method_id not in METHOD_NAMES:
      raise FormatError(f"unknown method id {method_id}")
    fingerprint = reader.take(8)
    if version >= 4:
      fields = _read_fields(reader)
    else:
      fields = _read_fields_v1_to_3(reader, version)
    run_name, shapes, extra, digest, tile, strings = fields
    check_run_name(run_name)
    if reader.position != len(body):
      raise FormatError("trailing bytes after the payload")
    return cls(METHOD_NAMES[method_id], fingerprint, run_name, shapes[0:2],
               shapes[2:4], shapes[4:6], strings, extra, digest, tile)


def _read_fields(reader):
  """(run name, shapes, extra, digest, tile, strings) of a version-4 file."""
  run_name = decode_run_name(reader.take(reader.varint()))
  shapes = tuple(reader.varint() for _ in range(6))
  extra = reader.take(reader.varint())
  (digest,) = reader.unpack("<I")
  tile = reader.varint()
  strings = [reader.take(reader.varint()) for _ in range(reader.varint())]
  return run_name, shapes, extra, digest, tile, strings


def _read_fields_v1_to_3(reader, version):
  """The same fields of a version 1-3 file (fixed-width fields, plain name)."""
  (name_length,) = reader.unpack("<H")
  try:
    run_name = reader.take(name_length).decode("utf-8")
  except UnicodeDecodeError:
    raise FormatError("the run name in the header is not UTF-8") from None
  shapes = reader.unpack("<6H")
  (extra_length,) = reader.unpack("<H")
  extra = reader.take(extra_length)
  digest = reader.unpack("<I")[0] if version >= 2 else None
  tile = reader.unpack("<H")[0] if version >= 3 else 0
  (payload_length,) = reader.unpack("<I")
  strings = unpack_strings(reader.take(payload_length))
  return run_name, shapes, extra, digest, tile, strings


def varint(value):
  """`value` (0 <= value < 2**35) as an unsigned LEB128 varint."""
  value = int(value)
  if not 0 <= value < 1 << (7 * _VARINT_MAX_BYTES):
    raise ValueError(f"{value} does not fit a header varint")
  out = bytearray()
  while True:
    out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
    value >>= 7
    if not value:
      return bytes(out)


def encode_run_name(name):
  """A plain run name's header bytes: each word of RUN_NAME_WORDS (longest
  first) as one byte, everything else as ASCII."""
  out, position = bytearray(), 0
  words = sorted(enumerate(RUN_NAME_WORDS), key=lambda w: -len(w[1]))
  while position < len(name):
    for index, word in words:
      if name.startswith(word, position):
        out.append(_WORD_BYTE + index)
        position += len(word)
        break
    else:
      out += name[position].encode("ascii")
      position += 1
  return bytes(out)


def decode_run_name(data):
  """The run name of header bytes written by `encode_run_name`."""
  parts = []
  for byte in data:
    if byte < _WORD_BYTE:
      parts.append(chr(byte))
    elif byte - _WORD_BYTE < len(RUN_NAME_WORDS):
      parts.append(RUN_NAME_WORDS[byte - _WORD_BYTE])
    else:
      raise FormatError(f"the run name in the header has an unknown word {byte}")
  return "".join(parts)


def check_run_name(name):
  """Raises FormatError unless `name` is a plain run name (no path, no `..`)."""
  if not checkpoints.is_plain_run_name(name):
    raise FormatError(f"invalid run name {name[:80]!r} in the header (a run name "
                      "is a folder name of letters, digits and _.,=+-)")


def latents_digest(*symbols):
  """CRC-32 of integer symbol arrays (as little-endian int64), in order."""
  crc = 0
  for array in symbols:
    array = np.asarray(array)
    if array.dtype.kind == "f":
      rounded = np.round(array)
      if not np.array_equal(rounded, array):
        raise ValueError("latents_digest takes integer-valued arrays")
      array = rounded
    crc = zlib.crc32(np.ascontiguousarray(array, "<i8").tobytes(), crc)
  return crc


def check_geometry(compressed, expected_latent_shapes, max_pixels=None,
                   strings=None):
  """Raises FormatError unless the header's shapes are consistent and bounded.

  Args:
    compressed: a parsed `CompressedFile`.
    expected_latent_shapes: function image (height, width) -> (y_shape, z_shape)
      of the model family that decodes the file.
    max_pixels: largest accepted height * width (default DEFAULT_MAX_PIXELS).
    strings: the number of payload strings the method writes, if fixed.
  """
  max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
  height, width = compressed.image_shape
  if height < 1 or width < 1:
    raise FormatError(f"image shape {height}x{width} in the header has no pixels")
  if height * width > max_pixels:
    raise FormatError(f"image of {width}x{height} pixels is above the limit of "
                      f"{max_pixels} (raise it with --max_pixels)")
  y_shape, z_shape = expected_latent_shapes((height, width))
  if (tuple(compressed.y_shape) != tuple(y_shape)
      or tuple(compressed.z_shape) != tuple(z_shape)):
    raise FormatError(f"latent shapes {tuple(compressed.y_shape)}, "
                      f"{tuple(compressed.z_shape)} do not match a {width}x{height} "
                      "image")
  try:
    tiling.check_tile(compressed.tile, compressed.y_shape)
  except tiling.TilingError as error:
    raise FormatError(f"{error} (header)") from None
  if strings is not None and len(compressed.strings) != strings:
    raise FormatError(f"a {compressed.method} file has {strings} payload strings, "
                      f"this one {len(compressed.strings)}")


class _Reader:

  def __init__(self, data, position=0):
    self.data = data
    self.position = position

  def take(self, n):
    if self.position + n > len(self.data):
      raise FormatError("file is truncated")
    chunk = self.data[self.position:self.position + n]
    self.position += n
    return chunk

  def unpack(self, fmt):
    return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

  def varint(self):
    value = 0
    for shift in range(0, 7 * _VARINT_MAX_BYTES, 7):
      (byte,) = self.take(1)
      value |= (byte & 0x7F) << shift
      if not byte & 0x80:
        return value
    raise FormatError(f"a header number runs over {_VARINT_MAX_BYTES} bytes")


def pack_strings(strings):
  """Frames a list of byte strings: u16 count, then u32 length + bytes each."""
  parts = [struct.pack("<H", len(strings))]
  for s in strings:
    parts += [struct.pack("<I", len(s)), bytes(s)]
  return b"".join(parts)


def unpack_strings(data):
  reader = _Reader(data)
  (count,) = reader.unpack("<H")
  strings = []
  for _ in range(count):
    (length,) = reader.unpack("<I")
    strings.append(reader.take(length))
  if reader.position != len(data):
    raise FormatError("payload framing is inconsistent")
  return strings


def check_fingerprint(compressed, fingerprint, run_name):
  """Raises FormatError unless the file was made with these exact weights."""
  if compressed.fingerprint != fingerprint:
    raise FormatError(
        f"this file was encoded with run {compressed.run_name!r} (weights "
        f"{compressed.fingerprint.hex()}), but the loaded checkpoint {run_name!r} "
        f"has weights {fingerprint.hex()}; decoding would produce garbage")


@contextlib.contextmanager
def decoding_errors(path):
  """Turns every failure while decoding `path` into one `FormatError` line.

  Decoders meet damaged files in many ways (TF op errors, NumPy errors,
  constriction's `PanicException`, which derives from BaseException); this is the
  one place where they become a user error. Interrupts still interrupt.
  """
  try:
    yield
  except FormatError as error:
    message = str(error)
    raise FormatError(message if message.startswith(f"{path}:")
                      else f"{path}: {message}") from None
  except (KeyboardInterrupt, SystemExit, GeneratorExit):
    raise
  except BaseException as error:  # pylint: disable=broad-except
    text = str(error).strip()
    first = text.splitlines()[0][:200] if text else ""
    raise FormatError(f"{path}: cannot be decoded ({type(error).__name__}"
                      f"{': ' + first if first else ''}); the file is damaged "
                      "or was not written by this library") from None


def read_file(path):
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as error:
    raise FormatError(f"{path}: cannot read ({error.strerror})") from None
  try:
    return CompressedFile.from_bytes(data)
  except FormatError as error:
    raise FormatError(f"{path}: {error}") from None
