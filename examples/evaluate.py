"""Evaluation suite: rate-distortion curves of every method, real files throughout.

Usage:
  python examples/evaluate.py run --method M --images GLOB --results_dir DIR
      [--runs PATTERN --sga_its N --bbvi_its N --crop HxW --batch_images K
       --checkpoint_dir D --jpeg_qualities 10,50,90 --bac_lambdas 0.1,1,10
       --irec_kl_per_block 8 --shard_index i --num_shards n]
  python examples/evaluate.py summarize --results_dir DIR [--method M,...]
  python examples/evaluate.py bd_rate A.csv B.csv
  python examples/evaluate.py plot --csv A.csv --csv B.csv ... --out DIR
      [--reference A.csv]

run: codes every image with method M (comma-separated: several methods in turn)
for every run whose name matches the glob --runs (default: the method's family,
e.g. 'mbt2018-*'). Each (run, image) item writes a real file, decodes it and
stores DIR/M/RUN/IMAGE.json (bpp from the file size; bits-back methods: bpp is
the net rate after bits back, file_bpp the file's). Finished items are
skipped, so an interrupted run resumes. Then DIR/M.csv gets one row per lambda
(means over images) with columns lmbda,bpp,est_bpp,psnr,ms_ssim,
encode_seconds,decode_seconds. For jpeg the lambda column holds the quality,
for bayesian_ac the rate penalty, for irec the VAE run's sigma2.

Parallel shards: start the same command N times with --num_shards N and
--shard_index 0..N-1 (same DIR, or different DIRs merged later); item k of the
ordered (run, image) list belongs to shard k mod N. Afterwards
`summarize --results_dir DIR` merges all per-image JSON into the CSVs.

bd_rate: BD-rate (%) and BD-PSNR (dB) of curve B relative to curve A; our CSVs
or headerless `bpp, psnr` CSVs (e.g. the paper's published curves).

plot: DIR/rd_psnr.png, DIR/rd_ms_ssim.png (CSVs with an ms_ssim column) and
DIR/savings_psnr.png (rate savings vs PSNR relative to --reference, default the
first --csv).

Methods:
{methods}
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
# TensorFlow must be imported before app.run: imported inside it, traced GDN
# layers compute the wrong formula (see transforms.check_graph_tensor_equality).
import tensorflow  # pylint: disable=g-import-not-at-top,unused-import

from tfc_inference.evaluation import options as options_lib  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import registry  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import reports  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import runner  # pylint: disable=g-import-not-at-top

__doc__ = __doc__.format(methods=registry.methods_help())  # pylint: disable=redefined-builtin

flags.DEFINE_list(
    "method", None,
    f"run: method(s) to evaluate, comma-separated; one of {', '.join(registry.METHODS)}. "
    "summarize: only these methods (default: every method in --results_dir).")
flags.DEFINE_string(
    "runs", None,
    "run: glob (fnmatch) over run names in --checkpoint_dir, e.g. "
    "'mbt2018-num_filters=64-*', or several globs separated by commas (e.g. "
    "'*-lmbda=0.005,*-lmbda=0.01'); only runs of the method's model families are "
    "used. Default: the method's family ('mbt2018-*' for mbt2018 and the "
    "iterative methods, 'mbt2018_bb-*' for bits-back, 'bmshj2018-*'), one run "
    "per lambda: the widest (a narrower run beside it, such as the 64-filter "
    "lambda=0.01 default of the demo, only when named). Ignored by jpeg.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png",
                    "run: image file or glob; results are stored by file stem.")
flags.DEFINE_string(
    "results_dir", None,
    "run, summarize: folder of per-image JSON (METHOD/RUN/IMAGE.json) and of "
    "the per-method CSVs (METHOD.csv). Required.")
flags.DEFINE_string(
    "checkpoint_dir", None,
    "run: folder of run directories. Default: the shipped checkpoints/ (or "
    "$TFC_INFERENCE_CHECKPOINTS).")
flags.DEFINE_integer(
    "sga_its", 2000,
    "run: iterations of iterative inference (sga, map, ste, unoise, danneal) "
    "and of the joint SGA + BBVI optimization (bb_sga).")
flags.DEFINE_integer(
    "bbvi_its", 2000,
    "run: iterations of reproducible BBVI over q(z|y) (bb_sga, bb_no_sga); the "
    "decoder repeats them.")
flags.DEFINE_float(
    "schedule_scale", 1.,
    "run: the temperature schedules of sga, danneal and bb_sga see iteration t "
    "as t * schedule_scale; e.g. 4 with --sga_its 500 runs the paper's "
    "2000-iteration annealing in 500 steps (a cheaper, shorter protocol).")
flags.DEFINE_enum(
    "compute_dtype", "float32", ["float32", "bfloat16"],
    "run: dtype of the synthesis inside the relaxed objective of sga, the "
    "ablations and bb_sga (bfloat16 is faster on CPUs with AVX512-BF16; true "
    "losses and files stay float32).")
flags.DEFINE_integer("eval_every", 10,
                     "run: true-loss evaluation interval of iterative inference.")
flags.DEFINE_string("crop", None,
                    "run: optional HxW center crop of every image, e.g. 256x256 "
                    "(recorded in the JSON).")
flags.DEFINE_integer(
    "batch_images", 4,
    "run: same-sized images optimized jointly by iterative methods and bb_sga.")
flags.DEFINE_list(
    "jpeg_qualities", [str(q) for q in options_lib.DEFAULT_JPEG_QUALITIES],
    "run --method jpeg: JPEG qualities (0-100), one CSV row each.")
flags.DEFINE_list(
    "bac_lambdas", [f"{v:g}" for v in options_lib.DEFAULT_BAC_LAMBDAS],
    "run --method bayesian_ac: rate penalties of Bayesian AC, one CSV row each.")
flags.DEFINE_float("irec_kl_per_block", 8.,
                   "run --method irec: Omega, the KL in bits of each auxiliary "
                   "step (1-20); encoding time grows like 2^(Omega (1 + eps)).")
flags.DEFINE_float("irec_extra_samples", 0.3,
                   "run --method irec: epsilon, the candidates' oversampling (0-1).")
flags.DEFINE_integer("irec_beams", 5, "run --method irec: beam width (1-256).")
flags.DEFINE_integer("irec_block_steps", 4,
                     "run --method irec: auxiliary steps per block (1-64).")
flags.DEFINE_integer("seed", 0,
                     "run: seed of SGA, BBVI, the bits-back side information and "
                     "the irec candidates.")
flags.DEFINE_integer(
    "progress_every", 0,
    "run: also print iterative-inference progress every N iterations (0: only "
    "the per-item progress bar).")
flags.DEFINE_string(
    "tile", "auto",
    "run: run the transforms on tiles of this many image pixels per side (a "
    "multiple of 16) so memory stays bounded on large photos; 0 never tiles; "
    "auto tiles only images above 2.1 megapixels. Files record it.")
flags.DEFINE_integer("shard_index", 0,
                     "run: which shard this process computes, 0..num_shards-1.")
flags.DEFINE_integer(
    "num_shards", 1,
    "run: split the (run, image) items into this many shards; item k goes to "
    "shard k mod num_shards.")
flags.DEFINE_multi_string(
    "csv", [], "plot: an R-D CSV to draw (repeat the flag for several curves).")
flags.DEFINE_string("out", None, "plot: output folder of the PNG figures.")
flags.DEFINE_string(
    "reference", None,
    "plot: the curve the savings figure and BD-rates are relative to "
    "(default: the first --csv).")
flags.DEFINE_string(
    "title", None,
    "plot: title of every figure; state the protocol (images, iterations, "
    "which checkpoints).")
flags.DEFINE_float(
    "max_bpp", 1.2,
    "plot: right end of the rate axis of the R-D figures (0: show every "
    "point); the default shows the learned codecs' region.")

FLAGS = flags.FLAGS


def _results_dir():
  if not FLAGS.results_dir:
    raise options_lib.UserError("--results_dir is required")
  return FLAGS.results_dir


def _options():
  try:
    qualities = [int(q) for q in FLAGS.jpeg_qualities]
  except ValueError:
    raise options_lib.UserError("--jpeg_qualities must be integers, got "
                                f"{','.join(FLAGS.jpeg_qualities)}") from None
  try:
    bac_lambdas = [float(v) for v in FLAGS.bac_lambdas]
  except ValueError:
    raise options_lib.UserError("--bac_lambdas must be numbers, got "
                                f"{','.join(FLAGS.bac_lambdas)}") from None
  return options_lib.Options(
      bac_lambdas=bac_lambdas, sga_its=FLAGS.sga_its, bbvi_its=FLAGS.bbvi_its,
      eval_every=FLAGS.eval_every, batch_images=FLAGS.batch_images,
      seed=FLAGS.seed, crop=options_lib.parse_crop(FLAGS.crop),
      jpeg_qualities=qualities, checkpoint_dir=FLAGS.checkpoint_dir,
      progress_every=FLAGS.progress_every, schedule_scale=FLAGS.schedule_scale,
      compute_dtype=FLAGS.compute_dtype, irec_kl_per_block=FLAGS.irec_kl_per_block,
      irec_extra_samples=FLAGS.irec_extra_samples, irec_beams=FLAGS.irec_beams,
      irec_block_steps=FLAGS.irec_block_steps,
      tile_pixels=options_lib.parse_tile(FLAGS.tile))


def run_command():
  if not FLAGS.method:
    raise options_lib.UserError("run needs --method")
  results_dir, options = _results_dir(), _options()
  for method in FLAGS.method:
    registry.get_method(method)
  from tfc_inference.models import frozen  # pylint: disable=import-outside-toplevel
  frozen.warn_if_slow_bfloat16(
      options.compute_dtype,
      lambda message: print(f"warning: {message}", file=sys.stderr, flush=True))
  for method in FLAGS.method:
    runner.run_method(method, results_dir, FLAGS.images, FLAGS.runs, options,
                      FLAGS.shard_index, FLAGS.num_shards)


def summarize_command():
  runner.summarize(_results_dir(), FLAGS.method or None)


def plot_command():
  if not FLAGS.out:
    raise options_lib.UserError("plot needs --out DIR")
  reports.plot_command(FLAGS.csv, FLAGS.out, FLAGS.reference, title=FLAGS.title,
                       max_bpp=FLAGS.max_bpp)


SUBCOMMANDS = {
    "run": (run_command, 0),
    "summarize": (summarize_command, 0),
    "bd_rate": (reports.bd_rate_command, 2),
    "plot": (plot_command, 0),
}


def fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def main(argv):
  args = argv[1:]
  if not args or args[0] not in SUBCOMMANDS:
    fail(f"expected a subcommand ({', '.join(SUBCOMMANDS)}); see --help")
  handler, num_args = SUBCOMMANDS[args[0]]
  if len(args) - 1 != num_args:
    fail(f"{args[0]}: expected {num_args} argument(s), got {len(args) - 1}; "
         "see --help")
  try:
    handler(*args[1:])
  except options_lib.UserError as error:
    fail(str(error))
  except ValueError as error:
    # The library's input errors (unreadable images, missing or unloadable
    # runs, corrupted files) are ValueError subclasses with one-line messages.
    if type(error).__module__.startswith("tfc_inference"):
      fail(str(error))
    raise


if __name__ == "__main__":
  app.run(main)
