"""Relative entropy coding (iREC; Flamich, Havasi & Hernandez-Lobato, NeurIPS 2020).

Codes a *sample* of the Bayesian AC VAE's Gaussian posterior q(y|x) in about
KL(q || p) bits: encoder and decoder share --seed, the encoder picks among prior
samples the ones that follow q (beam search over auxiliary variables) and the
file holds only their indices. No quantizer, no discretized prior.

Usage:
  python examples/irec.py compress RUNNAME INPUT [OUTPUT] [--kl_per_block 8 \\
      --extra_samples 0.3 --beams 5 --block_steps 4 --seed 0 --results_dir DIR]
  python examples/irec.py decompress INPUT [OUTPUT]

compress    writes one .tfci file per input image and decodes it again; prints
            bpp (real file size), kl_bpp (the posterior's KL), their ratio, PSNR.
            Encoding time grows like 2^(kl_per_block * (1 + extra_samples)).
decompress  reads the run name and the coder settings from the file header and
            writes a PNG.

RUNNAME is a bls2017_vae run (see examples/bayesian_ac.py) in --checkpoint_dir
(or $TFC_INFERENCE_CHECKPOINTS) or a path to one. INPUT is an image file, a
glob, or a .npy batch of uint8 images.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import commands  # pylint: disable=g-import-not-at-top
from tfc_inference.cli import common  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import bayesian_ac_image  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import irec  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import irec_image  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top
from tfc_inference.util import progress  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
FILE_SUFFIX = ".tfci"

common.define_coding_flags()
flags.DEFINE_float("kl_per_block", 8.,
                   "Omega: KL in bits of each auxiliary step (1-20).")
flags.DEFINE_float("extra_samples", 0.3,
                   "epsilon: a step of k bits draws ceil(2^(k (1 + epsilon))) "
                   "candidates (0-1).")
flags.DEFINE_integer("beams", 5, "Beam width of the search over auxiliary steps.")
flags.DEFINE_integer("block_steps", 4,
                     "Auxiliary steps per block (a block's KL is about "
                     "block_steps * kl_per_block).")
flags.DEFINE_float("progress_seconds", 10.,
                   "compress: print progress with an ETA at most this often.")
flags.adopt_module_key_flags(common)


def _settings():
  return irec.Settings(FLAGS.kl_per_block, FLAGS.extra_samples, FLAGS.beams,
                       FLAGS.seed, FLAGS.block_steps)


def _progress_printer(name):
  eta, last = progress.Eta(100), [time.time()]

  def report(done, total):
    percent = 100. * done / max(total, 1)
    left = eta.update(percent)
    if FLAGS.verbose and time.time() - last[0] >= FLAGS.progress_seconds:
      last[0] = time.time()
      common.say(f"  {name}: {percent:3.0f}% of the search, ETA "
                 f"{progress.format_seconds(left)}")
  return report


def compress(run, input_spec, output=None):
  """`compress RUNNAME INPUT [OUTPUT]`."""
  settings = _settings()  # bad settings fail before any work
  common.tile_pixels()  # a bad --tile fails before reading any image
  inputs = image_io.expand_inputs(input_spec, warn=common.warn)
  tile_pixels = common.check_tiles(inputs)
  outputs = common.plan_outputs(inputs, output, FILE_SUFFIX)
  common.prepare_outputs()
  codec = irec_image.IRECImageCodec.load(run, common.checkpoint_dir())
  codec.codec.tile_pixels = tile_pixels
  for (name, image), path in zip(inputs, outputs):
    data, result = codec.compress(image, settings, name=name,
                                  progress_fn=_progress_printer(name))
    common.write_bytes(path, data)
    common.write_result_json(name, result)
    common.say(common.format_result(name, result)
               + f"  kl_bpp {result['kl_bpp']:.4f} (file/KL "
               f"{result['coded_over_kl']:.3f})  -> {path}")


def decompress(input_path, output=None):
  """`decompress INPUT [OUTPUT]`: run and settings come from the file header."""
  image, info, codec, output = commands.decompress_vae_file(
      input_path, output, irec_image.METHOD)
  settings = info["settings"]
  common.say(f"{input_path} (irec, kl_per_block {settings.kl_per_block:g}, beams "
             f"{settings.beams}, run {codec.run_name}) -> {output} "
             f"[{image.shape[1]}x{image.shape[0]}]")


def main(argv):
  def guarded(handler):
    def run(*args):
      try:
        handler(*args)
      except (ValueError, bayesian_ac_image.CodingError) as error:
        common.fail(str(error).strip().splitlines()[0] if str(error).strip()
                    else type(error).__name__)
    return run

  common.run_subcommands(argv, {
      "compress": (guarded(compress), 2, 3),
      "decompress": (guarded(decompress), 1, 2),
  }, __doc__)


if __name__ == "__main__":
  app.run(main)
