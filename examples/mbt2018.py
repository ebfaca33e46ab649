"""Mean-scale hyperprior (Minnen et al. 2018 without context model) [M3], amortized.

Usage:
  python examples/mbt2018.py train [--lambda 0.01 --num_filters 64 ...]
  python examples/mbt2018.py compress RUNNAME INPUT [OUTPUT] [--results_dir DIR]
  python examples/mbt2018.py decompress INPUT [OUTPUT]

RUNNAME is a run directory name in --checkpoint_dir (e.g.
mbt2018-num_filters=64-num_latents=192-lmbda=0.01) or a path to one. INPUT for compress is an image
file, a glob, or a .npy batch of uint8 images; each image becomes one .tfci file.
decompress reads the run name from the file header and writes a PNG.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import commands
from tfc_inference.cli import common
from tfc_inference.coding import codec

PREFIX = "mbt2018"
common.define_coding_flags()
common.define_train_flags(PREFIX)

flags.adopt_module_key_flags(common)


def amortized(model, x, images, names):  # pylint: disable=unused-argument
  y_hat, z_hat = codec.amortized_latents(model, x)
  return y_hat, z_hat, [{} for _ in images]


def main(argv):
  common.run_subcommands(argv, {
      "train": (lambda: commands.train(PREFIX), 0, 0),
      "compress": (lambda *a: commands.compress(PREFIX, [PREFIX], amortized, *a),
                   2, 3),
      "decompress": (commands.decompress, 1, 2),
  }, __doc__)


if __name__ == "__main__":
  app.run(main)
