"""Shared pieces of the absl binaries in `examples/`.

Each binary is `python examples/NAME.py SUBCOMMAND ARGS... [--flags]`; this module
defines the flags they share, runs subcommands, and turns user errors (bad inputs,
missing runs, corrupted files) into one-line messages with a non-zero exit status.
"""

import os
import sys

from absl import flags
from absl import logging

from tfc_inference import distribution
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.models import tiling
from tfc_inference.models import weights
from tfc_inference.util import image_io
from tfc_inference.util import output_paths

FLAGS = flags.FLAGS

USER_ERRORS = (image_io.ImageError, file_format.FormatError,
               checkpoints.CheckpointError, weights.WeightMismatchError,
               output_paths.OutputError, distribution.StrategyError,
               tiling.TilingError, FileExistsError)


def define_coding_flags():
  flags.DEFINE_string(
      "checkpoint_dir", None,
      "Folder holding run directories. Default: the checkpoints/ folder shipped "
      "with the package (or $TFC_INFERENCE_CHECKPOINTS).")
  flags.DEFINE_string(
      "results_dir", None,
      "If set, compress writes one JSON per image here with bpp (from the real "
      "file size), est_bpp (entropy model), psnr, ms_ssim, mse, seconds, ...")
  flags.DEFINE_bool("overwrite", False,
                    "Overwrite output files that already exist.")
  flags.DEFINE_integer(
      "max_pixels", file_format.DEFAULT_MAX_PIXELS,
      "decompress: refuse files whose header announces more pixels than this "
      "(guards memory against damaged or hostile files).")
  flags.DEFINE_string(
      "tile", "auto",
      "compress: run the transforms on tiles of this many image pixels per side "
      f"(a multiple of {tiling.STRIDE}), so memory stays bounded on large photos; "
      "0 never tiles; auto tiles at "
      f"{tiling.DEFAULT_TILE * tiling.STRIDE} above "
      f"{tiling.AUTO_TILE_PIXELS / 1e6:.1f} megapixels. The file records the tile "
      "size and decompress repeats it.")
  flags.DEFINE_integer("seed", 0, "Random seed (training data order, sampling).")
  flags.DEFINE_bool("verbose", True, "Print progress and per-image results.")


def tile_pixels():
  """--tile as `tiling.choose_tile` takes it: None (auto) or an int; checks it."""
  text = FLAGS.tile.strip().lower()
  if text == "auto":
    return None
  try:
    value = int(text)
  except ValueError:
    raise tiling.TilingError(f"--tile must be auto, 0 or a number of pixels, not "
                             f"{FLAGS.tile!r}") from None
  tiling.tile_from_pixels(value)  # checks it
  return value


def tile_for(image):
  """The tile size (latent pixels) for one image under --tile."""
  return tiling.choose_tile(image.shape, tile_pixels())


def check_tiles(inputs):
  """Checks --tile against every (name, image) input before any work (e.g. too
  many tiles for one image); returns --tile as `tile_pixels` does."""
  value = tile_pixels()
  for _, image in inputs:
    tiling.choose_tile(image.shape, value)
  return value


def define_train_flags(default_prefix, with_lambda=True, run_name_help=None):
  """Flags of every `train` subcommand (`--lambda` only for R-D trained models)."""
  if with_lambda:
    flags.DEFINE_float("lambda", 0.01,
                       "Rate-distortion trade-off: loss = bpp + lambda * MSE, MSE on "
                       "0-255 pixels.")
  flags.DEFINE_integer(
      "num_filters", 64,
      "Channels of every hidden layer and of z (paper: 192); --init_from a run "
      "with fewer embeds its weights (see widening.widen)." if with_lambda else
      "Channels of every layer and of the latents (paper: 192).")
  if with_lambda:  # the hyperprior families
    flags.DEFINE_integer(
        "num_latents", None,
        "Channels of y when wider than --num_filters (Minnen et al.: 320 at high "
        "rates). --init_from a narrower run embeds its weights (see "
        "widening.widen). Default: --num_filters.")
    flags.DEFINE_enum(
        "train_synthesis_input", "noisy", ["noisy", "rounded"],
        "What the synthesis transform reconstructs from in a training step: "
        "noisy (y plus uniform noise, as tfc trains) or rounded (the y_hat the "
        "decoder gets, with a straight-through gradient; the rate stays on the "
        "noisy y). Recorded in each leg of lr_schedule.")
  flags.DEFINE_string("train_glob", "../shared/data/train/*",
                      "Glob of training images (PNG/JPEG).")
  flags.DEFINE_integer("batchsize", 8,
                       "Training batch size: the global batch, split evenly over "
                       "the replicas of --strategy.")
  flags.DEFINE_integer("patchsize", 256, "Size of random square training crops.")
  flags.DEFINE_integer("last_step", 100000,
                       "Train until this step (resuming counts earlier steps).")
  flags.DEFINE_float("lr", 1e-4,
                     "Adam learning rate; divided by 10 from --decay_at on.")
  flags.DEFINE_integer(
      "decay_at", None,
      "Step (counted like --last_step) where the learning rate drops 10x. "
      "Default: 80% of --last_step. Set it when a long run is trained in "
      "several shorter commands.")
  flags.DEFINE_string(
      "init_from", None,
      "Run name (or run directory) whose weights initialize a new run where "
      "layer names and shapes agree, e.g. to fine-tune another lambda.")
  flags.DEFINE_string(
      "run_name", None, run_name_help or
      f"Run directory name; default: {default_prefix}-num_filters=N-lmbda=L.")
  flags.DEFINE_enum(
      "train_compute_dtype", "float32", ["float32", "bfloat16"],
      "Dtype of the analysis and synthesis transforms inside the training step "
      "(weights, entropy models and rates stay float32). bfloat16 is about 1.4-2x "
      "faster with AMX-BF16 or on AMD's AVX512-BF16, slower on Intel CPUs with "
      "AVX512-BF16 but no AMX, and emulated (slow) without either; a warning "
      "says when this CPU is of a slow kind.")
  flags.DEFINE_integer("log_every", 100, "Print/log training progress every N steps.")
  flags.DEFINE_integer("save_every", 500,
                       "Write a resumable checkpoint every N steps.")
  flags.DEFINE_enum(
      "strategy", "default", ["default", "mirrored", "multi_worker"],
      "tf.distribute strategy: default (one device), mirrored (all local GPUs, "
      "or --cpu_replicas logical CPUs), multi_worker (the hosts of TF_CONFIG, "
      "each running this command; see the README).")
  flags.DEFINE_integer(
      "cpu_replicas", 0,
      "With --strategy mirrored on a host without GPUs: split the CPU into this "
      "many logical devices (0: one).")


def say(message):
  if FLAGS.verbose:
    print(message, flush=True)


def warn(message):
  print(f"warning: {message}", file=sys.stderr, flush=True)


def fail(message):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def run_subcommands(argv, subcommands, usage):
  """Dispatches `argv[1]` to `subcommands[name](args)` with clean error output."""
  logging.set_verbosity(logging.WARNING)
  args = argv[1:]
  if not args or args[0] not in subcommands:
    fail(f"expected a subcommand ({', '.join(subcommands)}).\n{usage}")
  name, args = args[0], args[1:]
  handler, min_args, max_args = subcommands[name]
  if not min_args <= len(args) <= max_args:
    fail(f"{name}: expected {min_args}..{max_args} arguments, got {len(args)}.\n"
         f"{usage}")
  try:
    handler(*args)
  except USER_ERRORS as error:
    fail(str(error))


def check_writable(path, what="output"):
  """Raises OutputError unless `path` can be written (see `output_paths`)."""
  output_paths.check_file(path, FLAGS.overwrite, what)


def plan_outputs(inputs, output, suffix):
  """Checked output file per (name, image) input; see `output_paths.plan`."""
  return output_paths.plan([name for name, _ in inputs], output, suffix,
                           FLAGS.overwrite)


def prepare_outputs():
  """Checks the output flags every binary shares, before any model is loaded."""
  if "results_dir" in FLAGS and FLAGS.results_dir:
    output_paths.make_directory(FLAGS.results_dir, "--results_dir")


def write_bytes(path, data):
  output_paths.write_atomic(path, data, FLAGS.overwrite)


def write_result_json(name, result):
  if not FLAGS.results_dir:
    return
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  path = os.path.join(FLAGS.results_dir, f"{name}.json")
  checkpoints.write_json_atomic(path, result)


def checkpoint_dir():
  return FLAGS.checkpoint_dir or checkpoints.default_checkpoint_dir()


def format_result(name, result):
  keys = [("bpp", "{:.4f}"), ("est_bpp", "{:.4f}"), ("net_bpp", "{:.4f}"),
          ("psnr", "{:.2f} dB"), ("ms_ssim", "{:.4f}"), ("seconds", "{:.1f} s")]
  parts = [f"{k} " + fmt.format(result[k]) for k, fmt in keys if k in result]
  return f"{name}: " + "  ".join(parts)


def define_bits_back_flags():
  flags.DEFINE_string(
      "side_info", None,
      "compress: file whose bytes are the side information xi to embed with "
      "bits-back coding. Default: random bits from --seed (the paper's "
      "worst case), sized to what decoding z consumes.")
  flags.DEFINE_string(
      "side_info_out", None,
      "decompress: write the recovered side information to this file (only if "
      "it passes its checksum).")


def define_posterior_refit_flags():
  """Flags of `refit_posterior` (with the train flags' --train_glob,
  --patchsize and --seed)."""
  flags.DEFINE_integer("refit_steps", 2000,
                       "refit_posterior: Adam steps on the hyper-analysis.")
  flags.DEFINE_float("refit_lr", 1e-4, "refit_posterior: Adam learning rate.")
  flags.DEFINE_integer("refit_batchsize", 16,
                       "refit_posterior: rounded latents per step.")
  flags.DEFINE_integer(
      "refit_crops", 1024,
      "refit_posterior: training crops (--patchsize) whose rounded latents it "
      "fits to, --refit_held_out of them held out to report the net rate.")
  flags.DEFINE_integer("refit_held_out", 128,
                       "refit_posterior: crops held out of the fit.")

def define_schedule_scale_flag():
  flags.DEFINE_float(
      "schedule_scale", None,
      "The temperature schedule sees iteration t as t * schedule_scale. Default: "
      "2000 / --sga_its, so any iteration count anneals as the paper's schedule "
      "does over 2000 (1 at 2000 iterations); 1 if --t0 or --annealing_rate is "
      "set.")


def schedule_scale_from_flags():
  """--schedule_scale, or the default that fits the schedule to --sga_its."""
  if FLAGS.schedule_scale is not None:
    return FLAGS.schedule_scale
  if FLAGS["t0"].present or FLAGS["annealing_rate"].present:
    return 1.0
  from tfc_inference.inference import rounding  # pylint: disable=import-outside-toplevel
  return rounding.fitted_schedule_scale(FLAGS.sga_its)


def define_compute_dtype_flag():
  flags.DEFINE_enum(
      "compute_dtype", "float32", ["float32", "bfloat16"],
      "Dtype of the synthesis inside the relaxed objective. bfloat16 is faster "
      "with AMX-BF16 or on AMD's AVX512-BF16 (see results/speed/), slower on "
      "Intel CPUs with AVX512-BF16 but no AMX and several times slower without "
      "either (a warning says so); the true loss, the rounded "
      "latents and the file are float32 either way, so files decode exactly.")


def compute_dtype():
  """--compute_dtype, after warning (before any long work) if this CPU runs
  it slower than float32."""
  from tfc_inference.models import frozen  # pylint: disable=import-outside-toplevel
  frozen.warn_if_slow_bfloat16(FLAGS.compute_dtype, warn)
  return FLAGS.compute_dtype


def define_inference_flags(method):
  """Flags of the iterative-inference binaries (defaults: paper supplement S3)."""
  from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel
  flags.DEFINE_integer("sga_its", 2000,
                       "Iterations of iterative inference (any method).")
  flags.DEFINE_float(
      "lr", None,
      f"Adam learning rate. Default: {iterative.DEFAULT_LR[method]:g} for "
      f"{method} (5e-3 for sga/map/unoise/danneal, 1e-4 for ste).")
  tau0, rate, t0 = iterative.DEFAULT_SCHEDULE.get(
      method, iterative.DEFAULT_SCHEDULE["sga"])
  flags.DEFINE_float(
      "annealing_rate", None,
      f"c in tau(t) = min(tau0, tau0 * exp(-c * (t - t0))). Default: {rate:g} "
      f"for {method} (sga: 1e-3; danneal: 4e-3, the authors' DA schedule).")
  flags.DEFINE_integer(
      "t0", None, f"t0 of the temperature schedule (iterations). Default: {t0} "
      f"for {method} (sga: 700; danneal: 402).")
  flags.DEFINE_float(
      "tau0", None, f"Initial (maximal) temperature tau0. Default: {tau0:g} for "
      f"{method} (sga: 0.5; danneal: 0.2).")
  define_schedule_scale_flag()
  define_compute_dtype_flag()
  flags.DEFINE_enum("schedule", "paper", ["paper", "naive"],
                    "Temperature schedule: paper = min(tau0, tau0*exp(-c(t-t0))); "
                    "naive = tau0*exp(-c t).")
  flags.DEFINE_float(
      "lambda", None,
      "Rate-distortion trade-off of the inference objective (bpp + lambda * MSE). "
      "Default: the lambda the run was trained with.")
  flags.DEFINE_integer("eval_every", 10,
                       "Evaluate the true (rounded) R-D loss every N iterations.")
  flags.DEFINE_integer("batch_images", 4,
                       "Optimize up to this many same-sized images jointly.")
  flags.DEFINE_integer("progress_every", 100, "Print progress every N iterations.")
