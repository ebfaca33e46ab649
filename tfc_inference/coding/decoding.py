"""Decoding files that anyone may have written: every method, every check, in order.

`decode` is what the binaries' `decompress` runs. The order matters:
  1. the container (magic, version, CRC, plain run name) is parsed;
  2. every header field is validated against the method's rules (shapes, pixel
     limit, bits-back, Bayesian AC and iREC settings), before any model is loaded;
  3. the run is looked up by name inside the checkpoint folder only, and its
     family and weight fingerprint must fit the file;
  4. the payload is decoded and the decoded symbols must match the header's
     digest.
Any failure in 2-4 ends in one `file_format.FormatError` (or a
`checkpoints.CheckpointError` for a run that is not there), never a traceback.
"""

from typing import Callable, Optional

from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.models import hyperprior

RANGE_CODED_METHODS = ("mbt2018", "bmshj2018", "sga", "map", "ste", "unoise",
                       "danneal")
BITS_BACK_METHODS = ("mbt2018_bb", "bb_plain", "bb_no_sga", "bb_sga")
BAYESIAN_AC_METHODS = ("bayesian_ac",)
IREC_METHODS = ("irec",)  # iREC codes samples of the same VAE runs

# (run name, checkpoint dir) -> a loaded model (hyperprior) or `ImageCodec` (VAE).
Loader = Callable[[str, Optional[str]], object]


def check_header(compressed, max_pixels=None):
  """Step 2: validates every header field of a parsed file (FormatError)."""
  if compressed.method in RANGE_CODED_METHODS:
    codec.check_range_coded_header(compressed, max_pixels)
  elif compressed.method in BITS_BACK_METHODS:
    from tfc_inference.coding import bits_back  # pylint: disable=import-outside-toplevel
    bits_back.check_header(compressed, max_pixels)
  elif compressed.method in BAYESIAN_AC_METHODS:
    from tfc_inference.coding import bayesian_ac_image  # pylint: disable=import-outside-toplevel
    bayesian_ac_image.check_header(compressed, max_pixels)
  elif compressed.method in IREC_METHODS:
    from tfc_inference.coding import irec_image  # pylint: disable=import-outside-toplevel
    irec_image.check_header(compressed, max_pixels)
  else:
    raise file_format.FormatError(f"no decoder for method {compressed.method!r}")


def load_named_run(name, checkpoint_dir=None, bayesian_ac=False):
  """Step 3's default loader: a run by plain name, inside `checkpoint_dir` only."""
  if bayesian_ac:
    from tfc_inference.coding import bayesian_ac_image  # pylint: disable=import-outside-toplevel
    return bayesian_ac_image.ImageCodec.load(name, checkpoint_dir, name_only=True)
  model, _, _ = checkpoints.load_run(name, checkpoint_dir, name_only=True)
  return model


def _check_family(compressed, model):
  if compressed.method in RANGE_CODED_METHODS:
    needed, families = hyperprior.RangeCodedHyperprior, "a mbt2018 or bmshj2018 run"
  else:
    needed, families = hyperprior.BitsBackHyperprior, "a mbt2018_bb run"
  if not isinstance(model, needed):
    raise file_format.FormatError(
        f"a {compressed.method} file names run {compressed.run_name!r} of "
        f"another model family; it needs {families}")
  file_format.check_fingerprint(compressed, model.fingerprint(),
                                compressed.run_name)


def decode_parsed(compressed, model, max_pixels=None):
  """Steps 2 and 4 for a parsed file and its loaded model (or `ImageCodec`).

  Returns (uint8 image [H, W, 3], info dict: `messages`, and for bits-back
  `side_info` (None if it failed its checksum) and `y_hat`).
  """
  check_header(compressed, max_pixels)
  if compressed.method in BAYESIAN_AC_METHODS:
    quantizer, setting, values = model.decode_latents(compressed, max_pixels)
    image = model.reconstruct(values, compressed.image_shape, compressed.tile)
    return image, dict(quantizer=quantizer, setting=setting, messages=[])
  if compressed.method in IREC_METHODS:
    from tfc_inference.coding import irec_image  # pylint: disable=import-outside-toplevel
    if not isinstance(model, irec_image.IRECImageCodec):
      model = irec_image.IRECImageCodec(model)
    settings, sample = model.decode_latents(compressed, max_pixels)
    image = model.codec.reconstruct(sample, compressed.image_shape, compressed.tile)
    return image, dict(settings=settings, messages=[])
  _check_family(compressed, model)
  if compressed.method in RANGE_CODED_METHODS:
    _, image = codec.range_coded_decode_fn(model, compressed, max_pixels)
    return image, dict(messages=[])
  from tfc_inference.coding import bits_back  # pylint: disable=import-outside-toplevel
  return bits_back.decode_file(model, compressed, max_pixels)


def decode(data, checkpoint_dir=None, max_pixels=None, source="<bytes>",
           loader=None):
  """Decodes file bytes with every check of the module docstring.

  Args:
    data: the file's bytes.
    checkpoint_dir: folder of run directories (default: the shipped one).
    max_pixels: largest image accepted (default `file_format.DEFAULT_MAX_PIXELS`).
    source: the file's name, for messages.
    loader: `Loader` (default `load_named_run`), e.g. a cache in tests.
  Returns:
    (uint8 image [H, W, 3], info dict), see `decode_parsed`.
  """
  try:
    compressed = file_format.CompressedFile.from_bytes(data)
  except file_format.FormatError as error:
    raise file_format.FormatError(f"{source}: {error}") from None
  with file_format.decoding_errors(source):
    check_header(compressed, max_pixels)
  bayesian = compressed.method in BAYESIAN_AC_METHODS + IREC_METHODS
  if loader is None:
    model = load_named_run(compressed.run_name, checkpoint_dir, bayesian)
  else:
    model = loader(compressed.run_name, checkpoint_dir)
  with file_format.decoding_errors(source):
    return decode_parsed(compressed, model, max_pixels)
