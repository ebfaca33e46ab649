"""Bayesian arithmetic coding (Yang, Bamler & Mandt, ICML 2020) with a bls2017 VAE.

One VAE (Ballé et al. 2017 transforms, Gaussian posterior, N(0, 1) prior, Gaussian
likelihood of variance --sigma2 on [0, 1] pixels) compresses at any rate: the rate
penalty --lambda of Bayesian AC is chosen at compression time.

Usage:
  python examples/bayesian_ac.py train [--num_filters 64 --sigma2 0.001 ...]
  python examples/bayesian_ac.py fit RUNNAME [--fit_glob GLOB ...]
  python examples/bayesian_ac.py compress RUNNAME INPUT [OUTPUT] --lambda 0.1
  python examples/bayesian_ac.py decompress INPUT [OUTPUT]
  python examples/bayesian_ac.py rd RUNNAME INPUT [--lambdas 0.01,0.1,1] \\
      [--results_dir DIR]

train   trains (or resumes) run bls2017_vae-num_filters=N-sigma2=S on the NELBO,
        then fits the coding tables (as `fit` does).
fit     (re)fits a run's coding tables on training images: the empirical prior
        (per-channel DeepFactorized on posterior means) and per-channel symbol
        tables for Bayesian AC (--fit_lambdas), uniform quantization
        (--fit_uniform_steps) and k-means quantization (--fit_kmeans_levels).
        Refitting changes the run's fingerprint: older files no longer decode.
compress  writes one .tfci file per input image; --quantizer uniform (--step) or
        kmeans (--levels) use the baselines on the same latents instead, and
        --quantizer bayesian_ac_centroids (--lambda) decodes Bayesian AC's symbols
        at centroids fitted on training latents (our extension; runs fitted
        before it have none: add them with `fit RUNNAME --centroids_only`).
decompress  reads the run name from the file header and writes a PNG.
rd      sweeps Bayesian AC (--lambdas), uniform (--uniform_steps), k-means
        (--kmeans_levels) and JPEG (--jpeg_qualities) on INPUT; with
        --results_dir it writes images/NAME.json per image, bayesian_ac.csv,
        uniform.csv, kmeans.csv, jpeg.csv (means over images) and channels.json
        (bits per latent of each channel against its mean KL).

RUNNAME is a run directory name in --checkpoint_dir (or $TFC_INFERENCE_CHECKPOINTS)
or a path to one. INPUT is an image file, a glob, or a .npy batch of uint8 images.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from tfc_inference.cli import commands  # pylint: disable=g-import-not-at-top
from tfc_inference.cli import common  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import bayesian_ac_image as bi  # pylint: disable=g-import-not-at-top
from tfc_inference.coding import bayesian_ac_tables  # pylint: disable=g-import-not-at-top
from tfc_inference.evaluation import bayesian_ac_sweep  # pylint: disable=g-import-not-at-top
from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
from tfc_inference.models import vae  # pylint: disable=g-import-not-at-top
from tfc_inference.util import image_io  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
FILE_SUFFIX = ".tfci"

common.define_coding_flags()
# -- training
common.define_train_flags(vae.PREFIX, with_lambda=False, run_name_help=(
    "Run directory name; default: bls2017_vae-num_filters=N-sigma2=S."))
flags.adopt_module_key_flags(common)
flags.DEFINE_float("sigma2", vae.DEFAULT_SIGMA2,
                   "Variance of the Gaussian likelihood on [0, 1] pixels (paper: "
                   "0.001); smaller values weigh distortion more.")

# -- fitting the coding tables
flags.DEFINE_string("fit_glob", None,
                    "Images to fit the coding tables on; default: --train_glob.")
flags.DEFINE_integer("fit_images", 0,
                     "Use at most this many (seeded random) fit images; 0: all.")
flags.DEFINE_list("fit_lambdas", [f"{v:g}" for v in bayesian_ac_tables.DEFAULT_LAMBDAS],
                  "Lambdas that get Bayesian AC symbol tables (others use the "
                  "nearest, in log).")
flags.DEFINE_list("fit_uniform_steps",
                  [f"{v:g}" for v in bayesian_ac_tables.DEFAULT_UNIFORM_STEPS],
                  "Step sizes of the uniform-quantization baseline (latent units).")
flags.DEFINE_list("fit_kmeans_levels",
                  [str(v) for v in bayesian_ac_tables.DEFAULT_KMEANS_LEVELS],
                  "Per-channel grid sizes K of the k-means baseline.")
flags.DEFINE_integer("prior_steps", 1000,
                     "Adam steps of the empirical prior's maximum-likelihood fit.")
flags.DEFINE_bool("centroids_only", False,
                  "fit: only add Bayesian AC centroids (for --quantizer "
                  "bayesian_ac_centroids) to the run's existing coding tables, "
                  "leaving every other table as it is (its files still change "
                  "fingerprint).")
flags.DEFINE_integer("fit_positions", 32768,
                     "Latent positions (random) used for symbol tables / k-means.")

# -- coding
flags.DEFINE_float("lambda", None,
                   "compress: Bayesian AC rate penalty per bit (larger: smaller "
                   "files). Required with --quantizer bayesian_ac and "
                   "bayesian_ac_centroids.")
flags.DEFINE_enum("quantizer", "bayesian_ac", list(bayesian_ac_tables.QUANTIZERS),
                  "compress: bayesian_ac (the paper's), bayesian_ac_centroids "
                  "(the same symbols, decoded at centroids fitted on training "
                  "latents: our extension), or a baseline on the same latents.")
flags.DEFINE_float("step", None, "compress --quantizer uniform: the step size "
                   "(one of the run's fitted steps).")
flags.DEFINE_integer("levels", None, "compress --quantizer kmeans: levels K (one of "
                     "the run's fitted values).")

# -- rd
flags.DEFINE_list("lambdas", None, "rd: Bayesian AC lambdas; default: the fitted grid.")
flags.DEFINE_list("uniform_steps", None,
                  "rd: uniform step sizes (fitted ones); default: all fitted.")
flags.DEFINE_list("kmeans_levels", None,
                  "rd: k-means levels (fitted ones); default: all fitted.")
flags.DEFINE_list("jpeg_qualities",
                  [str(q) for q in bayesian_ac_sweep.DEFAULT_JPEG_QUALITIES],
                  "rd: JPEG qualities (chroma 4:2:0).")
flags.DEFINE_list("methods", None, "rd: methods to sweep, of "
                  f"{','.join(bayesian_ac_sweep.ALL_METHODS)} (default: all the run "
                  "can code).")


def _numbers(name, cast=float):
  values = FLAGS[name].value
  if values is None:
    return None
  try:
    return [cast(v) for v in values]
  except ValueError:
    raise ValueError(f"--{name}: expected a comma-separated list of numbers, got "
                     f"{','.join(values)!r}") from None


def _fit_kwargs():
  return dict(lambdas=_numbers("fit_lambdas"),
              uniform_steps=_numbers("fit_uniform_steps"),
              kmeans_levels=_numbers("fit_kmeans_levels", int),
              prior_steps=FLAGS.prior_steps, max_rows=FLAGS.fit_positions,
              seed=FLAGS.seed)


def _fit_images():
  """The images the coding tables are fitted on (--fit_glob, --fit_images)."""
  return [image for _, image in bi.read_images(
      FLAGS.fit_glob or FLAGS.train_glob, FLAGS.fit_images or None, FLAGS.seed)]


def _fit(model, path, config):
  bi.fit_run(model, path, _fit_images(), config, print_fn=common.say,
             **_fit_kwargs())
  common.say(f"coding tables written to {os.path.join(path, checkpoints.WEIGHTS_FILE)}")


def train():
  """`train`: trains (or resumes) a run, then fits its coding tables."""
  name = FLAGS.run_name or vae.run_name(FLAGS.num_filters, FLAGS.sigma2)
  _fit_kwargs()  # bad fit flags fail now, not after hours of training
  path, config, model = commands.train_run(name, lambda: vae.BLS2017VAE(
      num_filters=FLAGS.num_filters, sigma2=FLAGS.sigma2), dict(
      model=vae.PREFIX, model_class=vae.BLS2017VAE.__name__,
      num_filters=FLAGS.num_filters, sigma2=FLAGS.sigma2,
      loss="NELBO: KL(q(y|x) || N(0, 1)) + ||x - g(y)||^2 / (2 sigma2), "
           "pixels in [0, 1], y ~ q(y|x) reparameterized"))
  if config.get("steps", 0) < FLAGS.last_step:
    common.warn("training stopped before --last_step; coding tables not fitted "
                "(run train again to resume, or `fit RUNNAME`)")
    return
  _fit(model, path, config)


def fit(run):
  """`fit RUNNAME`: (re)fits the coding tables of a trained run."""
  model, tables, config, run_name = vae.load_run(run, common.checkpoint_dir())
  path = checkpoints.run_dir(run, common.checkpoint_dir())
  if FLAGS.centroids_only:
    if "prior/knots" not in tables:
      raise ValueError(f"{run_name} has no coding tables to add centroids to; "
                       "fit them without --centroids_only")
    common.say(f"adding centroids to the coding tables of {run_name}")
    bi.add_centroids_to_run(model, path, tables, _fit_images(), config,
                            common.say, FLAGS.fit_positions, FLAGS.seed)
    common.say(f"coding tables written to {os.path.join(path, checkpoints.WEIGHTS_FILE)}")
    return
  common.say(f"fitting the coding tables of {run_name}")
  _fit(model, path, config)


def _setting():
  quantizer = FLAGS.quantizer
  flag = {"bayesian_ac": "lambda", "bayesian_ac_centroids": "lambda",
          "uniform": "step", "kmeans": "levels"}[quantizer]
  value = FLAGS[flag].value
  if value is None:
    raise ValueError(f"compress --quantizer {quantizer} needs --{flag}")
  return quantizer, float(value)


def compress(run, input_spec, output=None):
  """`compress RUNNAME INPUT [OUTPUT]`."""
  quantizer, setting = _setting()
  common.tile_pixels()  # a bad --tile fails before reading any image
  inputs = image_io.expand_inputs(input_spec, warn=common.warn)
  tile_pixels = common.check_tiles(inputs)
  outputs = common.plan_outputs(inputs, output, FILE_SUFFIX)
  common.prepare_outputs()
  codec = bi.ImageCodec.load(run, common.checkpoint_dir())
  codec.tile_pixels = tile_pixels
  codec.table_index(quantizer, setting)  # a bad setting fails before any work
  for (name, image), path in zip(inputs, outputs):
    data, result, _ = codec.compress(image, quantizer, setting, name=name)
    common.write_bytes(path, data)
    common.write_result_json(name, result)
    common.say(common.format_result(name, result)
               + f"  {bi.PARAMETER_NAMES[quantizer]} {setting:g}  -> {path}")


def decompress(input_path, output=None):
  """`decompress INPUT [OUTPUT]`: the run comes from the file header."""
  image, info, codec, output = commands.decompress_vae_file(input_path, output,
                                                           bi.METHOD)
  quantizer, setting = info["quantizer"], info["setting"]
  common.say(f"{input_path} ({quantizer} {bi.PARAMETER_NAMES[quantizer]} "
             f"{setting:g}, run {codec.run_name}) -> {output} "
             f"[{image.shape[1]}x{image.shape[0]}]")


def rd(run, input_spec):
  """`rd RUNNAME INPUT`: R-D sweep of every method with the one model."""
  common.prepare_outputs()
  codec = bi.ImageCodec.load(run, common.checkpoint_dir())
  inputs = image_io.expand_inputs(input_spec, warn=common.warn)
  methods = None if FLAGS.methods is None else list(FLAGS.methods)

  def image_done(name, results):
    if FLAGS.results_dir:
      directory = os.path.join(FLAGS.results_dir, "images")
      os.makedirs(directory, exist_ok=True)
      checkpoints.write_json_atomic(os.path.join(directory, f"{name}.json"),
                                    dict(image=name, run=codec.run_name,
                                         points=results))

  sweep = bayesian_ac_sweep.rate_distortion(
      codec, inputs, lambdas=_numbers("lambdas"),
      uniform_steps=_numbers("uniform_steps"),
      kmeans_levels=_numbers("kmeans_levels", int),
      jpeg_qualities=_numbers("jpeg_qualities", int), methods=methods,
      print_fn=common.say, image_done_fn=image_done)
  for line in bayesian_ac_sweep.format_rows(sweep["rows"]):
    common.say(line)
  report = sweep["channels"]
  if report is not None:
    collapsed = report["collapsed_channels"]
    worst = max((max(report["channels"][i]["bits_per_latent"])
                 for i, ch in enumerate(report["channels"]) if ch["collapsed"]),
                default=None)
    common.say(f"{len(collapsed)}/{codec.num_channels} channels collapsed (mean "
               f"KL < {bayesian_ac_sweep.COLLAPSED_KL_BITS:g} bits/latent)"
               + ("" if worst is None else
                  f"; they cost at most {worst:.4f} bits/latent"))
  if FLAGS.results_dir:
    paths = bayesian_ac_sweep.write_rate_distortion(FLAGS.results_dir, sweep,
                                                    extra=dict(run=codec.run_name))
    common.say("wrote " + ", ".join(sorted(paths.values())))


def main(argv):
  def guarded(handler):
    def run(*args):
      try:
        handler(*args)
      except (ValueError, bi.CodingError) as error:
        common.fail(str(error).strip().splitlines()[0] if str(error).strip()
                    else type(error).__name__)
    return run

  common.run_subcommands(argv, {
      "train": (guarded(train), 0, 0),
      "fit": (guarded(fit), 1, 1),
      "compress": (guarded(compress), 2, 3),
      "decompress": (guarded(decompress), 1, 2),
      "rd": (guarded(rd), 2, 2),
  }, __doc__)


if __name__ == "__main__":
  app.run(main)
