"""The evaluation suite behind `examples/evaluate.py`: every method, runs x images.

One evaluation is a *method* (how an image becomes a file) applied to every
*run* (a trained checkpoint; for JPEG a quality setting) and every image. Each
(run, image) item ends in a real file that is decoded again; the metrics are
those of the decoded image and the rate is the file's length:

  RESULTS_DIR/<method>/<run>/<image>.json     one per (run, image)
  RESULTS_DIR/<method>.csv                    means over images, one row per
                                              lambda (`evaluation.RD_COLUMNS`)

Finished items are skipped, so an interrupted evaluation resumes where it
stopped. The ordered (run, image) work list is split deterministically into
shards (item k goes to shard k mod num_shards), so several processes or
machines can share one evaluation; `summarize` merges whatever per-image JSON
exists into the CSVs.

Units: bpp in bits per pixel (bits-back methods: `bpp` is the *net* rate, file
bits minus the side-information bits got back; the file's own rate is
`file_bpp`), PSNR in dB, MS-SSIM linear in [0, 1], times in seconds. The
"lambda" of JPEG is its quality setting, that of Bayesian AC its compression-time
rate penalty (one bls2017_vae run gives a whole curve).

Adding a method:

  runner.register(runner.Method(
      name="my_method", encode=my_encode, families=("mbt2018",),
      default_runs="mbt2018-*", settings=("seed",)))

where `my_encode(run, batch, options)` gets a loaded `Run`, a list of
(name, uint8 image) pairs (one pair unless `batched=True`) and the `Options`,
and returns one result dict per image holding at least bpp, psnr, ms_ssim,
seconds (encode time) and decode_seconds (see `_range_coded_results`).

TensorFlow is imported only where models or images are touched, so `bd_rate`,
`plot` and `summarize` start quickly. (Weight keys no longer depend on where
TensorFlow is first imported: see `weights.NamedWeightsMixin`.)
"""

import dataclasses
import fnmatch
import glob as glob_lib
import json
import math
import os
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from tfc_inference import evaluation
from tfc_inference import plots
from tfc_inference import progress

DEFAULT_JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Ten operating points of one Bayesian AC model: also the grid its coding tables
# are fitted on by default (bayesian_ac_image.DEFAULT_LAMBDAS is this tuple; it
# lives here because this module must not import TF), and what
# results/kodak/bayesian_ac.csv holds.
DEFAULT_BAC_LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1., 3., 10., 30., 100.)
BAC_LAMBDA_TAG = "-bac_lmbda="
RESULT_SUFFIX = ".json"
VARIANT_SEPARATOR = "@"


class UserError(ValueError):
  """A bad argument or input; the message is one line."""


def warn(message):
  print(f"warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Options, runs and methods.


@dataclasses.dataclass
class Options:
  """Settings shared by all methods (each records the ones it uses).

  sga_its: iterations of iterative inference (sga, map, ste, unoise, danneal)
    and of the joint SGA + BBVI optimization (bb_sga).
  bbvi_its: iterations of reproducible BBVI over q(z | y_hat) (bb_sga,
    bb_no_sga), repeated by the decoder.
  eval_every: true-loss evaluation interval of the iterative methods.
  batch_images: same-sized images optimized jointly by batched methods.
  seed: seed of SGA sampling, BBVI and the bits-back side information.
  crop: optional (height, width) center crop applied to every image.
  jpeg_qualities: the qualities (0-100) the jpeg method sweeps.
  bac_lambdas: the rate penalties the bayesian_ac method sweeps.
  checkpoint_dir: folder of run directories (None: the shipped one).
  progress_every: print iterative-inference progress every N iterations
    (0: only the per-item progress bar).
  schedule_scale: the temperature schedules of sga, danneal and bb_sga see
    iteration t as t * schedule_scale (e.g. 4 with sga_its=500 anneals as the
    paper's schedule does over 2000 iterations).
  """
  sga_its: int = 2000
  bbvi_its: int = 2000
  eval_every: int = 10
  batch_images: int = 4
  seed: int = 0
  crop: Optional[Tuple[int, int]] = None
  jpeg_qualities: Sequence[int] = DEFAULT_JPEG_QUALITIES
  bac_lambdas: Sequence[float] = DEFAULT_BAC_LAMBDAS
  checkpoint_dir: Optional[str] = None
  progress_every: int = 0
  schedule_scale: float = 1.0

  def validate(self):
    for name in ("sga_its", "bbvi_its"):
      if getattr(self, name) < 0:
        raise UserError(f"--{name} must be >= 0, got {getattr(self, name)}")
    if self.eval_every < 1:
      raise UserError(f"--eval_every must be >= 1, got {self.eval_every}")
    if not self.schedule_scale > 0:
      raise UserError(
          f"--schedule_scale must be > 0, got {self.schedule_scale}")
    if self.batch_images < 1:
      raise UserError(f"--batch_images must be >= 1, got {self.batch_images}")
    if not self.jpeg_qualities:
      raise UserError("--jpeg_qualities is empty")
    if not self.bac_lambdas or any(
        not (float(v) >= 0 and math.isfinite(float(v))) for v in self.bac_lambdas):
      raise UserError("--bac_lambdas must be finite numbers >= 0")
    for quality in self.jpeg_qualities:
      if not 0 <= int(quality) <= 100:
        raise UserError(f"JPEG quality must be in 0..100, got {quality}")


def parse_crop(text):
  """'HxW' -> (H, W); None or '' -> None."""
  if not text:
    return None
  parts = text.lower().split("x")
  try:
    height, width = (int(p) for p in parts)
  except ValueError:
    raise UserError(f"--crop must look like HxW (e.g. 256x256), got {text!r}"
                    ) from None
  if height < 1 or width < 1:
    raise UserError(f"--crop must be positive, got {text!r}")
  return height, width


@dataclasses.dataclass
class Run:
  """One point of a curve: a loaded checkpoint, or a JPEG quality.

  `lmbda` is what the CSV's lambda column holds (the run's training lambda, or
  the JPEG quality). Runs of one `variant` (family and width) form one curve.
  """
  name: str
  lmbda: float
  variant: str
  family: Optional[str] = None
  model: object = None
  config: Optional[dict] = None
  quality: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Method:
  """An entry of the method registry `METHODS`.

  name: the method (directory and CSV name; the file header's method id).
  encode: (run, batch, options) -> list of per-image result dicts; `batch` is
    a list of (name, uint8 image [H, W, 3]) pairs of one size.
  families: model families whose runs this method codes; the `--runs` glob is
    matched among runs of these families only. Empty: needs no checkpoint, and
    `list_runs`/`load_run` supply the runs.
  default_runs: the glob over run names used without `--runs`.
  batched: whether several same-sized images may be encoded in one call.
  settings: names of the `Options` fields that change this method's results
    (recorded in every JSON; summarize warns when they differ in one CSV).
  list_runs: (options, pattern) -> run names, for methods that do not code one
    checkpoint per run (jpeg: qualities; bayesian_ac: checkpoint x lambda).
  load_run: (run name, options) -> `Run`, for methods without checkpoints.
  description: one line for --help.
  """
  name: str
  encode: Callable
  families: Tuple[str, ...] = ()
  default_runs: str = "*"
  batched: bool = False
  settings: Tuple[str, ...] = ()
  list_runs: Optional[Callable] = None
  load_run: Optional[Callable] = None
  description: str = ""

  def __call__(self, run, batch, options):
    return self.encode(run, batch, options)


METHODS = {}


def register(method):
  """Adds (or replaces) a method in the registry; returns it."""
  METHODS[method.name] = method
  return method


def get_method(name):
  if name not in METHODS:
    raise UserError(f"unknown method {name!r}; available: "
                    f"{', '.join(METHODS)}")
  return METHODS[name]


def methods_help():
  """One line per registered method, for usage texts."""
  return "\n".join(f"  {name:10s} {method.description}"
                   for name, method in METHODS.items())


# ----------------------------------------------------------------------------
# Encoders. Each turns images into files, decodes the files and measures.


def _to_batch(batch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference import codec  # pylint: disable=import-outside-toplevel
  return tf.concat([codec.to_batch(image) for _, image in batch], 0)




def _range_coded_results(method_name, run, batch, x, y_batch, z_batch,
                         shared_seconds, extras):
  """Range-codes each image's latents, decodes the file and measures it.

  `shared_seconds`: per-image share of the time spent finding the latents; the
  reported encode time adds the image's own entropy coding.
  """
  from tfc_inference import codec  # pylint: disable=import-outside-toplevel
  model = run.model
  results = []
  for i, (_, image) in enumerate(batch):
    start = time.time()
    y_hat, z_hat = codec.requantize(model, y_batch[i:i + 1], z_batch[i:i + 1])
    data = codec.encode_range_coded(model, run.name, method_name, image, y_hat,
                                    z_hat)
    seconds = shared_seconds + time.time() - start
    estimate = model.true_rd(x[i:i + 1], y_hat, z_hat,
                             valid_shape=image.shape[:2])
    result, _ = codec.verify_and_measure(  # raises if the file decodes wrongly
        model, image, data, y_hat.numpy(), codec.range_coded_decode_fn,
        seconds=seconds, extra_results=extras[i])
    result.update(est_bpp=float(estimate["bpp"][0]), file_bpp=result["bpp"])
    results.append(result)
  return results


def amortized_encoder(method_name):
  """mbt2018 / bmshj2018: the amortized encoder's latents, range coded."""

  def encode(run, batch, options):  # pylint: disable=unused-argument
    from tfc_inference import codec  # pylint: disable=import-outside-toplevel
    results = []
    for item in batch:
      start = time.time()
      x = _to_batch([item])
      y_hat, z_hat = codec.amortized_latents(run.model, x)
      results += _range_coded_results(method_name, run, [item], x, y_hat, z_hat,
                                      time.time() - start, [{}])
    return results

  return encode


def iterative_encoder(method_name):
  """sga, map, ste, unoise, danneal: `IterativeInference` over a batch."""

  def encode(run, batch, options):
    from tfc_inference import inference  # pylint: disable=import-outside-toplevel
    from tfc_inference import metrics  # pylint: disable=import-outside-toplevel
    start = time.time()
    x = _to_batch(batch)
    config = inference.InferenceConfig(
        method=method_name, iterations=options.sga_its,
        eval_every=options.eval_every, seed=options.seed,
        schedule_scale=options.schedule_scale)
    names = ",".join(name for name, _ in batch)
    progress_fn = None
    if options.progress_every:
      progress_fn = lambda p: print(  # noqa: E731
          f"  [{method_name} {run.name} {names}] it {p['iteration']} "
          f"tau {p['tau']:.3f} relaxed {p['relaxed_loss']:.4f} "
          f"true {p['true_loss']:.4f} "
          f"ETA {progress.format_seconds(p['eta'])}", flush=True)
    result = inference.IterativeInference(
        run.model, config, progress_fn=progress_fn,
        progress_every=options.progress_every or 100).run(
            x, batch[0][1].shape[:2])
    shared = (time.time() - start) / len(batch)
    extras = [dict(
        iterations=config.iterations, lr=config.learning_rate,
        init_bpp=float(result.init_bpp[i]),
        init_psnr=float(metrics.psnr_from_mse(result.init_mse[i])),
        init_loss=float(result.init_loss[i]), loss=float(result.loss[i]),
        best_iteration=int(result.best_iteration[i]), inference_seconds=shared,
        batch_size=len(batch),
        trajectory=[[t, true[i]] for t, true, _ in result.trajectory])
              for i in range(len(batch))]
    return _range_coded_results(method_name, run, batch, x, result.y_hat,
                                result.z_hat, shared, extras)

  return encode


def bits_back_encoder(method_name, joint_sga, reproducible_bbvi):
  """Lossy bits-back coding of a `BitsBackHyperprior` run.

  joint_sga: y_hat from the joint SGA + BBVI optimization [M2] (else the
    rounded amortized y). reproducible_bbvi: q(z | y_hat) from --bbvi_its
    iterations of reproducible BBVI (else the amortized hyper-encoder's).
  """

  def encode(run, batch, options):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfc_inference import bbvi  # pylint: disable=import-outside-toplevel
    from tfc_inference import metrics  # pylint: disable=import-outside-toplevel
    model = run.model
    start = time.time()
    x = _to_batch(batch)
    extras = [{} for _ in batch]
    if joint_sga:
      config = bbvi.BitsBackConfig(iterations=options.sga_its,
                                   eval_every=options.eval_every,
                                   seed=options.seed,
                                   schedule_scale=options.schedule_scale)
      y_batch, info = bbvi.BitsBackInference(model, config).run(
          x, batch[0][1].shape[:2])
      for i, extra in enumerate(extras):
        extra.update(
            iterations=config.iterations, init_loss=float(info["init_loss"][i]),
            init_bpp=float(info["init_bpp"][i]),
            init_psnr=float(metrics.psnr_from_mse(info["init_mse"][i])),
            batch_size=len(batch),
            nelbo_trajectory=[[t, v[i]] for t, v in info["nelbo_trajectory"]])
    else:
      y_batch = tf.round(model.analyze(x)[0]).numpy()
    shared = (time.time() - start) / len(batch)
    bbvi_its = options.bbvi_its if reproducible_bbvi else 0
    return [_bits_back_result(method_name, run, image, y_batch[i:i + 1], shared,
                              bbvi_its, options.seed, extras[i])
            for i, (_, image) in enumerate(batch)]

  return encode


def _bits_back_result(method_name, run, image, y_hat, shared_seconds, bbvi_its,
                      seed, extra):
  from tfc_inference import bits_back  # pylint: disable=import-outside-toplevel
  from tfc_inference import codec  # pylint: disable=import-outside-toplevel
  model = run.model
  start = time.time()
  data, info = bits_back.encode_file(model, run.name, method_name, image, y_hat,
                                     seed=seed, bbvi_its=bbvi_its,
                                     bbvi_seed=seed)
  seconds = shared_seconds + time.time() - start

  def decode_fn(model, compressed):
    decoded_image, decoded = bits_back.decode_file(model, compressed)
    if decoded["side_info"] != info["side_info"]:
      raise codec.CodingError("the decoder did not recover the side information")
    return decoded["y_hat"], decoded_image

  result, _ = codec.verify_and_measure(model, image, data, np.asarray(y_hat),
                                       decode_fn, seconds=seconds,
                                       extra_results=extra)
  pixels = image.shape[0] * image.shape[1]
  result.update(
      file_bpp=result["bpp"],
      bpp=(8 * len(data) - info["side_info_bits"]) / pixels,
      est_bpp=info["est_net_bits"] / pixels,
      side_info_bits=info["side_info_bits"], padding_bits=info["padding_bits"],
      bbvi_its=bbvi_its, bbvi_seconds=info["bbvi_seconds"])
  return result


def _jpeg_runs(options, pattern):  # pylint: disable=unused-argument
  return [f"quality={int(q)}" for q in sorted(set(options.jpeg_qualities))]


def _load_jpeg_run(name, options):  # pylint: disable=unused-argument
  quality = int(name.split("=", 1)[1])
  return Run(name=name, lmbda=float(quality), variant="jpeg", family="jpeg",
             quality=quality)


def _encode_jpeg(run, batch, options):  # pylint: disable=unused-argument
  """tf.io.encode_jpeg at `run.quality`, 4:2:0 chroma subsampling, baseline."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference import metrics  # pylint: disable=import-outside-toplevel
  results = []
  for _, image in batch:
    start = time.time()
    data = tf.io.encode_jpeg(image, format="rgb", quality=run.quality,
                             chroma_downsampling=True).numpy()
    seconds = time.time() - start
    start = time.time()
    decoded = tf.io.decode_jpeg(data, channels=3).numpy()
    decode_seconds = time.time() - start
    if decoded.shape != image.shape:
      raise RuntimeError(f"JPEG decoded to {decoded.shape}, not {image.shape}")
    height, width = image.shape[:2]
    bpp = metrics.bits_per_pixel(len(data), height, width)
    results.append(dict(
        bpp=bpp, file_bpp=bpp, est_bpp=None, num_bytes=len(data),
        psnr=metrics.psnr(image, decoded), ms_ssim=metrics.ms_ssim(image, decoded),
        mse=metrics.mse(image, decoded), seconds=seconds,
        decode_seconds=decode_seconds, height=height, width=width,
        quality=run.quality, chroma_subsampling="4:2:0"))
  return results


def _bac_runs(options, pattern):
  """bls2017_vae runs matching `pattern`, each at every lambda of the sweep."""
  from tfc_inference import checkpoints  # pylint: disable=import-outside-toplevel
  pattern = pattern or "bls2017_vae-*"
  root = _checkpoint_root(options)
  runs = [name for name in checkpoints.list_runs(root)
          if name.startswith("bls2017_vae-") and fnmatch.fnmatchcase(name, pattern)
          and os.path.exists(os.path.join(root, name, checkpoints.WEIGHTS_FILE))]
  if not runs:
    raise UserError(f"--runs {pattern!r} matches no trained bls2017_vae run in "
                    f"{root}")
  return [f"{run}{BAC_LAMBDA_TAG}{float(v):g}" for run in runs
          for v in sorted(set(float(v) for v in options.bac_lambdas))]


_BAC_CODECS = {}


def _load_bac_run(name, options):
  from tfc_inference import bayesian_ac_image  # pylint: disable=import-outside-toplevel
  run, lmbda = name.rsplit(BAC_LAMBDA_TAG, 1)
  key = (run, options.checkpoint_dir)
  if key not in _BAC_CODECS:  # one model serves every lambda of the sweep
    _BAC_CODECS[key] = bayesian_ac_image.ImageCodec.load(run, options.checkpoint_dir)
  return Run(name=name, lmbda=float(lmbda), variant=run, family="bls2017_vae",
             model=_BAC_CODECS[key])


def _encode_bayesian_ac(run, batch, options):  # pylint: disable=unused-argument
  """Bayesian AC at `run.lmbda`; the file is decoded again by `compress`."""
  results = []
  for name, image in batch:
    _, result, _ = run.model.compress(image, "bayesian_ac", run.lmbda, name=name)
    results.append(dict(result, file_bpp=result["bpp"]))
  return results


_ITERATIVE = ("sga", "map", "ste", "unoise", "danneal")
_ITERATIVE_TITLES = {
    "sga": "iterative inference with Stochastic Gumbel Annealing [M1]",
    "map": "iterative inference without rounding, MAP ablation [A1]",
    "ste": "iterative inference with the straight-through estimator [A2]",
    "unoise": "iterative inference with uniform noise [A3]",
    "danneal": "iterative inference with deterministic annealing [A4]",
}

register(Method("mbt2018", amortized_encoder("mbt2018"), ("mbt2018",),
                "mbt2018-*", description="mean-scale hyperprior, amortized [M3]"))
register(Method("mbt2018_bb", bits_back_encoder("mbt2018_bb", False, False),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("seed",),
                description="bits-back model, amortized y and q(z|y) [A6]"))
register(Method("bmshj2018", amortized_encoder("bmshj2018"), ("bmshj2018",),
                "bmshj2018-*",
                description="tfc's scale hyperprior, amortized [M6]"))
for _name in _ITERATIVE:
  register(Method(_name, iterative_encoder(_name), ("mbt2018", "bmshj2018"),
                  "mbt2018-*", batched=True,
                  settings=("sga_its", "eval_every", "seed",
                            "schedule_scale"),
                  description=_ITERATIVE_TITLES[_name] +
                  " (mbt2018 or bmshj2018 runs)"))
register(Method("bb_sga", bits_back_encoder("bb_sga", True, True),
                ("mbt2018_bb",), "mbt2018_bb-*", batched=True,
                settings=("sga_its", "bbvi_its", "eval_every", "seed",
                          "schedule_scale"),
                description="SGA + lossy bits-back with reproducible BBVI [M2]"))
register(Method("bb_no_sga", bits_back_encoder("bb_no_sga", False, True),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("bbvi_its", "seed"),
                description="bits-back, amortized y, reproducible BBVI [A5]"))
register(Method("bb_plain", bits_back_encoder("bb_plain", False, False),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("seed",),
                description="bits-back, amortized y and q(z|y) [A6]"))
register(Method("jpeg", _encode_jpeg, (), batched=False,
                list_runs=_jpeg_runs, load_run=_load_jpeg_run,
                description="tf.io.encode_jpeg, 4:2:0; lambda column = quality"))
register(Method("bayesian_ac", _encode_bayesian_ac, (), batched=False,
                list_runs=_bac_runs, load_run=_load_bac_run,
                description="Bayesian arithmetic coding with one bls2017_vae run "
                "(--runs 'bls2017_vae-*'); lambda column = its rate penalty"))


# ----------------------------------------------------------------------------
# Runs and images.


def _checkpoint_root(options):
  from tfc_inference import checkpoints  # pylint: disable=import-outside-toplevel
  return options.checkpoint_dir or checkpoints.default_checkpoint_dir()


def find_runs(method, pattern, options):
  """Run names of `method` matching the glob `pattern` (None: the default);
  a comma-separated pattern matches runs that match any of its globs."""
  if not method.families:
    return method.list_runs(options, pattern)
  from tfc_inference import checkpoints  # pylint: disable=import-outside-toplevel
  pattern = pattern or method.default_runs
  root = _checkpoint_root(options)
  available = checkpoints.list_runs(root)
  globs = [glob for glob in pattern.split(",") if glob]
  matched = [name for name in available
             if any(fnmatch.fnmatchcase(name, glob) for glob in globs)]
  if not matched:
    raise UserError(f"--runs {pattern!r} matches no run in {root}"
                    + (f" (available: {', '.join(available)})" if available
                       else ""))
  runs = []
  for name in matched:
    family = checkpoints.read_config(os.path.join(root, name)).get("model")
    if family not in method.families:
      continue
    if not os.path.exists(os.path.join(root, name, checkpoints.WEIGHTS_FILE)):
      warn(f"run {name} has no {checkpoints.WEIGHTS_FILE} yet; skipped")
      continue
    runs.append(name)
  if not runs:
    raise UserError(f"--runs {pattern!r} matches no usable run of "
                    f"{'/'.join(method.families)} (method {method.name}) in "
                    f"{root}; matched: {', '.join(matched)}")
  return runs


def load_run(method, name, options):
  if method.load_run is not None:
    return method.load_run(name, options)
  from tfc_inference import checkpoints  # pylint: disable=import-outside-toplevel
  model, config, run_name = checkpoints.load_run(name, _checkpoint_root(options))
  return Run(name=run_name, lmbda=float(config["lmbda"]),
             variant=f"{config['model']}-num_filters={config['num_filters']}",
             family=config["model"], model=model, config=config)


def find_images(spec):
  """Image file or glob -> sorted list of (name, path); names are file stems."""
  if os.path.isfile(spec):
    paths = [spec]
  else:
    paths = sorted(p for p in glob_lib.glob(spec) if os.path.isfile(p))
  if not paths:
    raise UserError(f"--images {spec!r} matches no file")
  images = {}
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in images:
      raise UserError(f"two images are named {name!r}: {images[name]} and "
                      f"{path}; results are stored by name")
    images[name] = path
  return sorted(images.items())


def center_crop(image, crop, name="image"):
  if crop is None:
    return image
  height, width = crop
  if image.shape[0] < height or image.shape[1] < width:
    raise UserError(f"{name}: {image.shape[0]}x{image.shape[1]} image is smaller "
                    f"than --crop {height}x{width}")
  top = (image.shape[0] - height) // 2
  left = (image.shape[1] - width) // 2
  return np.ascontiguousarray(image[top:top + height, left:left + width])


def read_image(path, crop=None):
  from tfc_inference import image_io  # pylint: disable=import-outside-toplevel
  image = image_io.read_image(path, warn=warn)
  return center_crop(image, crop, os.path.basename(path))


# ----------------------------------------------------------------------------
# Work list, sharding, resume.


def work_list(runs, image_names):
  """All (run, image) items in a fixed order: runs outer, images inner."""
  return [(run, image) for run in runs for image in image_names]


def shard(items, shard_index=0, num_shards=1):
  """Items k with k mod num_shards == shard_index (shards partition `items`)."""
  if num_shards < 1:
    raise UserError(f"--num_shards must be >= 1, got {num_shards}")
  if not 0 <= shard_index < num_shards:
    raise UserError(f"--shard_index must be in 0..{num_shards - 1}, got "
                    f"{shard_index}")
  return list(items[shard_index::num_shards])


def result_path(results_dir, method, run, image):
  return os.path.join(results_dir, method, run, image + RESULT_SUFFIX)


def _plain(value):
  """Numpy scalars/arrays -> JSON-friendly Python values."""
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.ndarray):
    return _plain(value.tolist())
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.floating):
    return float(value)
  if isinstance(value, bytes):
    return value.hex()
  return value


def _replace_atomically(path, write_to):
  """Calls write_to(temporary path) beside `path`, then renames it to `path`.

  Readers (and concurrent shards) never see a half-written file.
  """
  directory = os.path.dirname(path) or "."
  os.makedirs(directory, exist_ok=True)
  handle, tmp_path = tempfile.mkstemp(dir=directory, suffix=".tmp")
  os.close(handle)
  try:
    write_to(tmp_path)
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def write_json(path, obj):
  def write_to(tmp_path):
    with open(tmp_path, "w") as f:
      json.dump(_plain(obj), f, indent=1, sort_keys=True)
      f.write("\n")
  _replace_atomically(path, write_to)


def _format_seconds(seconds):
  if seconds is None or not math.isfinite(seconds):
    return "--:--:--"
  seconds = int(round(seconds))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
  """A text progress bar, one line per update, with an ETA from this session."""

  def __init__(self, total, done=0, out=None, width=24):
    self.total, self.done, self.width = total, done, width
    self.out = out or sys.stdout
    self.new = 0
    self.start = time.time()

  def line(self, note=""):
    fraction = self.done / self.total if self.total else 1.
    filled = int(round(self.width * fraction))
    elapsed = time.time() - self.start
    eta = (elapsed / self.new * (self.total - self.done)) if self.new else None
    return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/"
            f"{self.total} {100 * fraction:3.0f}%  elapsed "
            f"{_format_seconds(elapsed)}  ETA {_format_seconds(eta)}"
            + (f"  {note}" if note else ""))

  def update(self, count=1, note=""):
    self.done += count
    self.new += count
    print(self.line(note), file=self.out, flush=True)


def _batches(names, images, batch_size):
  """Same-sized image names in groups of at most `batch_size` (stable order)."""
  groups = {}
  for name in names:
    groups.setdefault(images[name].shape, []).append(name)
  for group in groups.values():
    for i in range(0, len(group), batch_size):
      yield group[i:i + batch_size]


def run_method(method_name, results_dir, images_spec, runs_pattern=None,
               options=None, shard_index=0, num_shards=1, out=None):
  """Evaluates one method on this shard's (run, image) items; writes the CSV.

  Skips items whose JSON exists. Returns a dict: total (items of this shard),
  skipped (already done), done (newly computed), csv (summarize's output).
  """
  out = out or sys.stdout
  options = options or Options()
  options.validate()
  method = get_method(method_name)
  os.makedirs(results_dir, exist_ok=True)
  if method.name == "jpeg" and runs_pattern:
    print(f"note: --runs is ignored by method {method.name}", file=out)
  images = find_images(images_spec)
  paths = dict(images)
  runs = find_runs(method, runs_pattern, options)
  mine = shard(work_list(runs, [name for name, _ in images]), shard_index,
               num_shards)
  todo = [(run, image) for run, image in mine if not os.path.exists(
      result_path(results_dir, method.name, run, image))]
  print(f"{method.name}: {len(runs)} run(s) x {len(images)} image(s)"
        + (f", shard {shard_index + 1}/{num_shards}: {len(mine)} item(s)"
           if num_shards > 1 else "")
        + f"; {len(mine) - len(todo)} already done, {len(todo)} to do",
        file=out, flush=True)
  progress = Progress(len(mine), len(mine) - len(todo), out)
  settings = {key: _plain(getattr(options, key)) for key in method.settings}
  crop = None if options.crop is None else "x".join(map(str, options.crop))
  loaded_images = {}
  batch_size = options.batch_images if method.batched else 1
  for run_name in runs:
    names = [image for run, image in todo if run == run_name]
    if not names:
      continue
    run = load_run(method, run_name, options)
    for name in names:
      if name not in loaded_images:
        loaded_images[name] = read_image(paths[name], options.crop)
    for batch_names in _batches(names, loaded_images, batch_size):
      batch = [(name, loaded_images[name]) for name in batch_names]
      results = method.encode(run, batch, options)
      if len(results) != len(batch):
        raise RuntimeError(f"method {method.name} returned {len(results)} "
                           f"results for {len(batch)} images")
      for name, result in zip(batch_names, results):
        record = dict(result)
        record.update(method=method.name, run=run.name, variant=run.variant,
                      family=run.family, image=name, lmbda=run.lmbda,
                      crop=crop, settings=settings)
        write_json(result_path(results_dir, method.name, run.name, name),
                   record)
        progress.update(1, f"{method.name} {run.name} {name}: bpp "
                        f"{record['bpp']:.4f} psnr {record['psnr']:.2f}")
  written = summarize(results_dir, [method.name], out=out, required=False)
  return dict(total=len(mine), skipped=len(mine) - len(todo), done=len(todo),
              csv=written)


# ----------------------------------------------------------------------------
# Summaries.


def load_results(results_dir, methods=None):
  """Per-image records under results_dir: dict method -> list of dicts."""
  records = {}
  pattern = os.path.join(glob_lib.escape(results_dir), "*", "*",
                         "*" + RESULT_SUFFIX)
  for path in sorted(glob_lib.glob(pattern)):
    method = os.path.basename(os.path.dirname(os.path.dirname(path)))
    if methods is not None and method not in methods:
      continue
    try:
      with open(path) as f:
        record = json.load(f)
    except (OSError, ValueError) as error:
      warn(f"{path}: unreadable ({error}); ignored")
      continue
    if not isinstance(record, dict) or record.get("lmbda") is None:
      warn(f"{path}: not a per-image result; ignored")
      continue
    records.setdefault(method, []).append(record)
  return records


def _check_group(label, records):
  """Warns when a curve mixes settings or has unequal images per lambda."""
  settings = {f"settings {json.dumps(r.get('settings'), sort_keys=True)}, "
              f"crop {r.get('crop')}" for r in records}
  if len(settings) > 1:
    warn(f"{label}: results were made with different settings or crops "
         f"({'; '.join(sorted(settings))})")
  counts, runs = {}, {}
  for record in records:
    lmbda = float(record["lmbda"])
    counts[lmbda] = counts.get(lmbda, 0) + 1
    runs.setdefault(lmbda, set()).add(record.get("run"))
  for lmbda, names in sorted(runs.items()):
    if len(names) > 1:
      warn(f"{label}: lambda {lmbda:g} row averages several runs "
           f"({', '.join(sorted(map(str, names)))})")
  if len(set(counts.values())) > 1:
    warn(f"{label}: images per lambda differ ("
         + ", ".join(f"{k:g}: {v}" for k, v in sorted(counts.items()))
         + "); an evaluation is incomplete and its means cover other images")


def write_csv(path, rows):
  """`evaluation.write_rd_csv`, replacing `path` atomically."""
  _replace_atomically(path, lambda tmp: evaluation.write_rd_csv(tmp, rows))


def summarize(results_dir, methods=None, out=None, required=True):
  """Merges per-image JSON (from any shards) into RESULTS_DIR/<method>.csv.

  One CSV per method with rows of means over images per lambda. If a method's
  results hold several variants (e.g. sga on mbt2018 and on bmshj2018 runs, or
  two widths), each variant gets RESULTS_DIR/<method>@<variant>.csv instead,
  since their lambdas are different curves. Returns dict CSV path -> rows.
  """
  out = out or sys.stdout
  if not os.path.isdir(results_dir):
    raise UserError(f"--results_dir {results_dir!r} is not a directory")
  records = load_results(results_dir, methods)
  if not records and required:
    raise UserError(f"no per-image results (<method>/<run>/<image>.json) in "
                    f"{results_dir}")
  written = {}
  for method in sorted(records):
    variants = {}
    for record in records[method]:
      variant = record.get("variant") or record.get("run") or "?"
      variants.setdefault(variant, []).append(record)
    if len(variants) == 1:
      groups = {method: next(iter(variants.values()))}
    else:
      print(f"note: {method} has results of {len(variants)} variants ("
            f"{', '.join(sorted(variants))}); writing one CSV per variant",
            file=out)
      groups = {f"{method}{VARIANT_SEPARATOR}{variant}": group
                for variant, group in sorted(variants.items())}
    for label, group in groups.items():
      _check_group(label, group)
      rows = evaluation.aggregate(group)
      path = os.path.join(results_dir, label + ".csv")
      write_csv(path, rows)
      written[path] = rows
      print(f"{path}: {len(rows)} row(s) from {len(group)} image result(s)",
            file=out)
      for row in rows:
        print("  " + "  ".join(
            f"{key} {_format_value(row[key])}"
            for key in ("lmbda", "bpp", "psnr", "ms_ssim")), file=out)
  return written


def _format_value(value):
  return "-" if value is None else f"{value:.4g}"


# ----------------------------------------------------------------------------
# Bjontegaard metrics and plots.


def read_curve(path, quality="psnr"):
  try:
    return evaluation.read_curve(path, quality)
  except ValueError as error:
    raise UserError(str(error)) from None


def bd_rate_command(path_a, path_b, out=None):
  """Prints BD-rate (%) and BD-PSNR (dB) of curve B relative to curve A.

  Returns (bd_rate, bd_psnr); either is None when not computable (e.g. the
  curves do not overlap in that axis); raises UserError if neither is.
  """
  out = out or sys.stdout
  rate_a, psnr_a = read_curve(path_a)
  rate_b, psnr_b = read_curve(path_b)
  values, errors = [], []
  for fn in (evaluation.bd_rate, evaluation.bd_psnr):
    try:
      values.append(fn(rate_a, psnr_a, rate_b, psnr_b))
    except ValueError as error:
      values.append(None)
      errors.append(str(error))
  if all(v is None for v in values):
    raise UserError(f"BD metrics of {path_b} vs {path_a}: {errors[0]}")
  bd_rate, bd_psnr = values
  print(f"B = {path_b}\nA = {path_a}", file=out)
  print("BD-rate of B relative to A: "
        + ("n/a" if bd_rate is None else f"{bd_rate:+.2f} %"), file=out)
  print("BD-PSNR of B relative to A: "
        + ("n/a" if bd_psnr is None else f"{bd_psnr:+.3f} dB"), file=out)
  return bd_rate, bd_psnr


def _has_column(path, name):
  """Whether `path` is a CSV with a header naming `name` with some values."""
  try:
    columns = evaluation.read_rd_csv(path)
  except ValueError:
    return False
  return name in columns and bool(np.any(np.isfinite(columns[name])))


def _label(path):
  return os.path.splitext(os.path.basename(path))[0]


def _ms_ssim_db(values):
  return -10 * np.log10(np.maximum(1 - np.asarray(values, float), 1e-10))


def plot_command(csv_paths, out_dir, reference=None, out=None, title=None,
                 max_bpp=None):
  """R-D PNGs and the rate-savings figure; returns the written paths.

  Writes OUT_DIR/rd_psnr.png (PSNR vs bpp), OUT_DIR/rd_ms_ssim.png (MS-SSIM in
  dB, -10 log10(1 - MS-SSIM), vs bpp, for the CSVs with an ms_ssim column) and
  OUT_DIR/savings_psnr.png (rate savings vs PSNR relative to `reference`,
  default the first CSV), and prints each curve's BD-rate vs the reference.
  `title` (the protocol) heads every figure; `max_bpp` ends the rate axis.
  """
  out = out or sys.stdout
  if not csv_paths:
    raise UserError("give at least one --csv")
  reference = reference or csv_paths[0]
  paths = list(csv_paths) + ([reference] if reference not in csv_paths else [])
  labels = {}
  for path in paths:
    label = _label(path)
    labels[path] = label if label not in labels.values() else path
  curves = {labels[p]: read_curve(p) for p in paths}
  os.makedirs(out_dir, exist_ok=True)
  written = []
  path = os.path.join(out_dir, "rd_psnr.png")
  plots.plot_rd(curves, path, ylabel="PSNR (dB)", title=title, max_bpp=max_bpp)
  written.append(path)
  ms_ssim = {labels[p]: read_curve(p, "ms_ssim") for p in paths
             if _has_column(p, "ms_ssim")}
  if ms_ssim:
    path = os.path.join(out_dir, "rd_ms_ssim.png")
    plots.plot_rd({k: (bpp, _ms_ssim_db(v)) for k, (bpp, v)
                   in ms_ssim.items()}, path,
                  ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", title=title,
                  max_bpp=max_bpp)
    written.append(path)
  ref_label = labels[reference]
  ref_curve = curves[ref_label]
  others = {}
  for label, curve in curves.items():
    if label == ref_label:
      continue
    try:
      bd = evaluation.bd_rate(*ref_curve, *curve)
    except ValueError as error:
      warn(f"{label}: no savings vs {ref_label}: {error}")
      continue
    others[label] = curve
    print(f"BD-rate of {label} relative to {ref_label}: {bd:+.2f} %", file=out)
  if others:
    path = os.path.join(out_dir, "savings_psnr.png")
    plots.plot_savings(ref_curve, others, path, reference_label=ref_label,
                       title=title)
    written.append(path)
  for path in written:
    print(f"wrote {path}", file=out)
  return written
