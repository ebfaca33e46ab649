"""The compressed-file container shared by every method.

Layout (all integers little-endian):

  magic        4 bytes  b"TFCI"
  version      u8       FORMAT_VERSION
  method       u8       id from METHODS
  fingerprint  8 bytes  digest of the model weights (`HyperpriorModel.fingerprint`)
  run name     u16 length + UTF-8 bytes (the checkpoint run that encoded the file)
  image shape  u16 height, u16 width (before padding)
  latent shape u16 y_height, u16 y_width, u16 z_height, u16 z_width
  extra        u16 length + bytes (method-specific metadata, e.g. bits-back bookkeeping)
  payload      u32 length + bytes (a list of byte strings, see `pack_strings`)
  checksum     u32 CRC-32 of everything above

The checksum is verified before anything is entropy decoded, because tfc's range
decoder can loop for a long time on random bytes.
"""

import dataclasses
import struct
import zlib

MAGIC = b"TFCI"
FORMAT_VERSION = 1

# Stable ids: never renumber, only append.
METHODS = {
    "mbt2018": 1, "bmshj2018": 2, "mbt2018_bb": 3,
    "sga": 4, "map": 5, "ste": 6, "unoise": 7, "danneal": 8,
    "bb_sga": 9, "bb_no_sga": 10, "bb_plain": 11, "bayesian_ac": 12,
}
METHOD_NAMES = {v: k for k, v in METHODS.items()}


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

  def to_bytes(self):
    if self.method not in METHODS:
      raise ValueError(f"Unknown method {self.method!r}.")
    if len(self.fingerprint) != 8:
      raise ValueError("Fingerprint must be 8 bytes.")
    name = self.run_name.encode("utf-8")
    payload = pack_strings(self.strings)
    body = b"".join([
        MAGIC, struct.pack("<BB", FORMAT_VERSION, METHODS[self.method]),
        self.fingerprint, struct.pack("<H", len(name)), name,
        struct.pack("<6H", *self.image_shape, *self.y_shape, *self.z_shape),
        struct.pack("<H", len(self.extra)), self.extra,
        struct.pack("<I", len(payload)), payload,
    ])
    return body + struct.pack("<I", zlib.crc32(body))

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
    if version != FORMAT_VERSION:
      raise FormatError(f"file format version {version} is not supported "
                        f"(this library reads version {FORMAT_VERSION})")
    if method_id not in METHOD_NAMES:
      raise FormatError(f"unknown method id {method_id}")
    fingerprint = reader.take(8)
    (name_length,) = reader.unpack("<H")
    run_name = reader.take(name_length).decode("utf-8")
    shapes = reader.unpack("<6H")
    (extra_length,) = reader.unpack("<H")
    extra = reader.take(extra_length)
    (payload_length,) = reader.unpack("<I")
    strings = unpack_strings(reader.take(payload_length))
    if reader.position != len(body):
      raise FormatError("trailing bytes after the payload")
    return cls(METHOD_NAMES[method_id], fingerprint, run_name, shapes[0:2],
               shapes[2:4], shapes[4:6], strings, extra)


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
