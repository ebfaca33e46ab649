"""Methods of the evaluation suite: one encoder per method, and their registry.

A *method* is how an image becomes a file; it is applied to *runs* (a trained
checkpoint; for JPEG a quality setting). Every encoder ends in a real file that is
decoded again: the metrics are those of the decoded image and the rate is the
file's length. The "lambda" of JPEG is its quality setting, that of Bayesian AC its
compression-time rate penalty (one bls2017_vae run gives a whole curve).

Adding a method:

  registry.register(registry.Method(
      name="my_method", encode=my_encode, families=("mbt2018",),
      default_runs="mbt2018-*", settings=("seed",)))

where `my_encode(run, batch, options)` gets a loaded `Run`, a list of
(name, uint8 image) pairs (one pair unless `batched=True`) and the `Options`,
and returns one result dict per image holding at least bpp, psnr, ms_ssim,
seconds (encode time) and decode_seconds (see `_range_coded_results`).

Units: bpp in bits per pixel (bits-back methods: `bpp` is the *net* rate, file
bits minus the side-information bits got back; the file's own rate is
`file_bpp`), PSNR in dB, MS-SSIM linear in [0, 1], times in seconds.

TensorFlow is imported only inside the encoders and run loaders, so `--help`,
`bd_rate`, `plot` and `summarize` start quickly. (Weight keys no longer depend on
where TensorFlow is first imported: see `weights.NamedWeightsMixin`.)
"""

import dataclasses
import fnmatch
import math
import os
import sys
import time
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from tfc_inference.util import progress

DEFAULT_JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Ten operating points of one Bayesian AC model: the grid its coding tables are
# fitted on by default (`bayesian_ac_tables.DEFAULT_LAMBDAS`, repeated here because
# this module must not import TF; a test checks they agree), and what
# results/kodak/bayesian_ac.csv holds.
DEFAULT_BAC_LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1., 3., 10., 30., 100.)
BAC_LAMBDA_TAG = "-bac_lmbda="


class UserError(ValueError):
  """A bad argument or input; the message is one line."""


def warn(message):
  print(f"warning: {message}", file=sys.stderr, flush=True)


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


# Encoders. Each turns images into files, decodes the files and measures.


def _to_batch(batch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
  return tf.concat([codec.to_batch(image) for _, image in batch], 0)


def _range_coded_results(method_name, run, batch, x, y_batch, z_batch,
                         shared_seconds, extras):
  """Range-codes each image's latents, decodes the file and measures it.

  `shared_seconds`: per-image share of the time spent finding the latents; the
  reported encode time adds the image's own entropy coding.
  """
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
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
    from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
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
    from tfc_inference.inference import iterative  # pylint: disable=import-outside-toplevel
    from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
    start = time.time()
    x = _to_batch(batch)
    config = iterative.InferenceConfig(
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
    result = iterative.IterativeInference(
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
    from tfc_inference.inference import bbvi  # pylint: disable=import-outside-toplevel
    from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
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
  from tfc_inference.coding import bits_back  # pylint: disable=import-outside-toplevel
  from tfc_inference.coding import codec  # pylint: disable=import-outside-toplevel
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
  from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
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
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  pattern = pattern or "bls2017_vae-*"
  root = checkpoint_root(options)
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
  from tfc_inference.coding import bayesian_ac_image  # pylint: disable=import-outside-toplevel
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


def checkpoint_root(options):
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  return options.checkpoint_dir or checkpoints.default_checkpoint_dir()
