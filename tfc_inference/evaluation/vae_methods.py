"""Encoders of the methods on one Bayesian AC VAE (bls2017_vae runs).

* `bayesian_ac`: Bayesian arithmetic coding; one run gives a whole curve, one
  point per compression-time rate penalty of `Options.bac_lambdas` (run names
  `<run>-bac_lmbda=<lambda>`).
* `irec`: relative entropy coding of a posterior sample; one point per run (its
  rate is the posterior's KL, fixed by the training sigma2, the lambda column).

Both write real files and decode them again (`ImageCodec.compress`,
`IRECImageCodec.compress`). TensorFlow is imported inside the loaders only.
"""

import fnmatch
import os

from tfc_inference.evaluation import options as options_lib


def _vae_runs(root, pattern):
  """Trained bls2017_vae runs in `root` matching the glob `pattern` (comma-
  separated globs: any of them, as for the other methods)."""
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  globs = [glob for glob in pattern.split(",") if glob]
  runs = [name for name in checkpoints.list_runs(root)
          if name.startswith("bls2017_vae-")
          and any(fnmatch.fnmatchcase(name, glob) for glob in globs)
          and os.path.exists(os.path.join(root, name, checkpoints.WEIGHTS_FILE))]
  if not runs:
    raise options_lib.UserError(
        f"--runs {pattern!r} matches no trained bls2017_vae run in {root}")
  return runs


def bayesian_ac_runs(options, pattern):
  """bls2017_vae runs matching `pattern`, each at every lambda of the sweep."""
  pattern = pattern or "bls2017_vae-*"
  root = options_lib.checkpoint_root(options)
  runs = _vae_runs(root, pattern)
  return [f"{run}{options_lib.BAC_LAMBDA_TAG}{float(v):g}" for run in runs
          for v in sorted(set(float(v) for v in options.bac_lambdas))]


_BAC_CODECS = {}


def _codec(run, options):
  """The run's loaded `ImageCodec`, shared by every lambda of the Bayesian AC
  sweep and by irec (the model is loaded once per process)."""
  from tfc_inference.coding import bayesian_ac_image  # pylint: disable=import-outside-toplevel
  key = (run, options.checkpoint_dir)
  if key not in _BAC_CODECS:
    _BAC_CODECS[key] = bayesian_ac_image.ImageCodec.load(run, options.checkpoint_dir)
  return _BAC_CODECS[key]


def load_bayesian_ac_run(name, options):
  run, lmbda = name.rsplit(options_lib.BAC_LAMBDA_TAG, 1)
  return options_lib.Run(name=name, lmbda=float(lmbda), variant=run,
                         family="bls2017_vae", model=_codec(run, options))


def bayesian_ac_encoder(quantizer="bayesian_ac"):
  """The runner's encode function of Bayesian AC at `run.lmbda`, decoded at the
  code points ("bayesian_ac") or at the fitted centroids
  ("bayesian_ac_centroids"); `compress` decodes each file again."""
  def encode(run, batch, options):
    run.model.tile_pixels = options.tile_pixels
    results = []
    for name, image in batch:
      _, result, _ = run.model.compress(image, quantizer, run.lmbda, name=name)
      results.append(dict(result, file_bpp=result["bpp"]))
    return results
  return encode


def irec_runs(options, pattern):
  """bls2017_vae runs matching `pattern` (default: all), one point each."""
  return _vae_runs(options_lib.checkpoint_root(options), pattern or "bls2017_vae-*")


def load_irec_run(name, options):
  from tfc_inference.coding import irec_image  # pylint: disable=import-outside-toplevel
  codec = irec_image.IRECImageCodec(_codec(name, options))
  sigma2 = float(codec.codec.model.sigma2)
  return options_lib.Run(name=name, lmbda=sigma2, variant="bls2017_vae",
                         family="bls2017_vae", model=codec)


def encode_irec(run, batch, options):
  """iREC of a posterior sample of each image; the file is decoded again."""
  settings = options.irec_settings()
  run.model.codec.tile_pixels = options.tile_pixels
  results = []
  for name, image in batch:
    _, result = run.model.compress(image, settings, name=name)
    results.append(dict(result, file_bpp=result["bpp"]))
  return results
