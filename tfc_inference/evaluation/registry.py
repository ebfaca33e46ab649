"""The evaluation suite's methods: the registry of what each one codes, and how.

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

The encoders live by model family: `hyperprior_methods` (mbt2018, bmshj2018,
mbt2018_bb runs), `vae_methods` (bls2017_vae runs) and `jpeg`. They import
TensorFlow only when called, so `--help`, `bd_rate`, `plot` and `summarize` start
quickly.
"""

import dataclasses
from typing import Callable, Optional, Tuple

from tfc_inference.evaluation import hyperprior_methods
from tfc_inference.evaluation import jpeg
from tfc_inference.evaluation import options
from tfc_inference.evaluation import vae_methods


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
    raise options.UserError(f"unknown method {name!r}; available: "
                    f"{', '.join(METHODS)}")
  return METHODS[name]


def methods_help():
  """One line per registered method, for usage texts."""
  return "\n".join(f"  {name:10s} {method.description}"
                   for name, method in METHODS.items())


_ITERATIVE = ("sga", "map", "ste", "unoise", "danneal")
_ITERATIVE_TITLES = {
    "sga": "iterative inference with Stochastic Gumbel Annealing [M1]",
    "map": "iterative inference without rounding, MAP ablation [A1]",
    "ste": "iterative inference with the straight-through estimator [A2]",
    "unoise": "iterative inference with uniform noise [A3]",
    "danneal": "iterative inference with deterministic annealing [A4]",
}


register(Method("mbt2018", hyperprior_methods.amortized_encoder("mbt2018"), ("mbt2018",),
                "mbt2018-*", description="mean-scale hyperprior, amortized [M3]"))
register(Method("mbt2018_bb", hyperprior_methods.bits_back_encoder("mbt2018_bb", False, False),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("seed",),
                description="bits-back model, amortized y and q(z|y) [A6]"))
register(Method("bmshj2018", hyperprior_methods.amortized_encoder("bmshj2018"), ("bmshj2018",),
                "bmshj2018-*",
                description="tfc's scale hyperprior, amortized [M6]"))
for _name in _ITERATIVE:
  register(Method(_name, hyperprior_methods.iterative_encoder(_name), ("mbt2018", "bmshj2018"),
                  "mbt2018-*", batched=True,
                  settings=("sga_its", "eval_every", "seed",
                            "schedule_scale", "compute_dtype"),
                  description=_ITERATIVE_TITLES[_name] +
                  " (mbt2018 or bmshj2018 runs)"))
register(Method("bb_sga", hyperprior_methods.bits_back_encoder("bb_sga", True, True),
                ("mbt2018_bb",), "mbt2018_bb-*", batched=True,
                settings=("sga_its", "bbvi_its", "eval_every", "seed",
                          "schedule_scale", "compute_dtype"),
                description="SGA + lossy bits-back with reproducible BBVI [M2]"))
register(Method("bb_no_sga", hyperprior_methods.bits_back_encoder("bb_no_sga", False, True),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("bbvi_its", "seed"),
                description="bits-back, amortized y, reproducible BBVI [A5]"))
register(Method("bb_plain", hyperprior_methods.bits_back_encoder("bb_plain", False, False),
                ("mbt2018_bb",), "mbt2018_bb-*", settings=("seed",),
                description="bits-back, amortized y and q(z|y) [A6]"))
register(Method("jpeg", jpeg.encode, (), batched=False,
                list_runs=jpeg.list_runs, load_run=jpeg.load_run,
                description="tf.io.encode_jpeg, 4:2:0; lambda column = quality"))
register(Method("bayesian_ac", vae_methods.bayesian_ac_encoder("bayesian_ac"), (),
                batched=False, list_runs=vae_methods.bayesian_ac_runs,
                load_run=vae_methods.load_bayesian_ac_run,
                description="Bayesian arithmetic coding with one bls2017_vae run "
                "(--runs 'bls2017_vae-*'); lambda column = its rate penalty"))
register(Method("bayesian_ac_centroids",
                vae_methods.bayesian_ac_encoder("bayesian_ac_centroids"), (),
                batched=False, list_runs=vae_methods.bayesian_ac_runs,
                load_run=vae_methods.load_bayesian_ac_run,
                description="Bayesian AC's files decoded at centroids fitted on "
                "training latents (our extension; runs need centroids in their "
                "coding tables); lambda column = its rate penalty"))
register(Method("irec", vae_methods.encode_irec, (), batched=False,
                list_runs=vae_methods.irec_runs, load_run=vae_methods.load_irec_run,
                settings=("irec_kl_per_block", "irec_extra_samples", "irec_beams",
                          "irec_block_steps", "seed"),
                description="relative entropy coding of a posterior sample, one "
                "point per bls2017_vae run; lambda column = its sigma2"))
