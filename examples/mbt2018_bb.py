"""Mean-scale hyperprior with Gaussian q(z|x) for lossy bits-back coding, amortized.

Usage:
  python examples/mbt2018_bb.py train [--lambda 0.01 --num_filters 64 ...]
  python examples/mbt2018_bb.py refit_posterior RUNNAME [--refit_steps 2000 ...]
  python examples/mbt2018_bb.py compress RUNNAME INPUT [OUTPUT] [--side_info FILE]
  python examples/mbt2018_bb.py decompress INPUT [OUTPUT] [--side_info_out FILE]

Training minimizes the NELBO (net rate after bits back + lambda * MSE). compress
rounds the amortized y to integers and bits-back codes it with q(z | y_hat) from the
amortized hyper-encoder (no iterative inference; the paper's ablation A6). Without
--side_info, the side information is random bits from --seed; decompress recovers it
and checks it. Results report `net_bpp` = (file bits - side-information bits) /
pixels beside the file's `bpp`.

Training computes q(z|x) from the continuous y, coding from the rounded y_hat the
decoder has. refit_posterior (after training) fits the hyper-encoder alone to
the net rate of rounded training latents, so q(z | y_hat) is what coding needs;
y_hat and the distortion do not change (tfc_inference.posterior_refit).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import commands
from tfc_inference.cli import common

PREFIX = "mbt2018_bb"
common.define_coding_flags()
common.define_train_flags(PREFIX)
common.define_bits_back_flags()
common.define_posterior_refit_flags()

flags.adopt_module_key_flags(common)


def amortized(model, x, image, name):  # pylint: disable=unused-argument
  y, _ = model.analyze(x)
  return tf.round(y).numpy(), {}


def main(argv):
  common.run_subcommands(argv, {
      "train": (lambda: commands.train(PREFIX), 0, 0),
      "refit_posterior": (commands.refit_posterior, 1, 1),
      "compress": (lambda *a: commands.compress_bits_back(PREFIX, amortized, *a),
                   2, 3),
      "decompress": (commands.decompress, 1, 2),
  }, __doc__)


if __name__ == "__main__":
  app.run(main)
