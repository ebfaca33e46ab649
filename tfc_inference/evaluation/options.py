"""Settings and user-facing errors shared by every method of the evaluation suite.

`Options` holds what the user chose on the command line (iterations, seeds, crop,
sweeps); `Run` is one loaded point of a curve. Nothing here imports TensorFlow, so
`--help`, `bd_rate`, `plot` and `summarize` start quickly.
"""

import dataclasses
import math
import sys
from typing import Optional, Sequence, Tuple

DEFAULT_JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Ten operating points of one Bayesian AC model: the grid its coding tables are
# fitted on by default (`bayesian_ac_tables.DEFAULT_LAMBDAS`, repeated here because
# this module must not import TF; a test checks they agree), and what
# results/kodak/bayesian_ac.csv holds.
DEFAULT_BAC_LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1., 3., 10., 30., 100.)
BAC_LAMBDA_TAG = "-bac_lmbda="
# Image pixels per latent pixel (`models.tiling.STRIDE`; a test checks they agree).
TILE_STRIDE = 16



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
  seed: seed of SGA sampling, BBVI, the bits-back side information and of
    the irec candidates.
  crop: optional (height, width) center crop applied to every image.
  jpeg_qualities: the qualities (0-100) the jpeg method sweeps.
  bac_lambdas: the rate penalties the bayesian_ac method sweeps.
  checkpoint_dir: folder of run directories (None: the shipped one).
  progress_every: print iterative-inference progress every N iterations
    (0: only the per-item progress bar).
  schedule_scale: the temperature schedules of sga, danneal and bb_sga see
    iteration t as t * schedule_scale (e.g. 4 with sga_its=500 anneals as the
    paper's schedule does over 2000 iterations).
  compute_dtype: dtype of the synthesis inside the relaxed objective of sga,
    the ablations and bb_sga ("float32" or "bfloat16"; `models.frozen`).
  irec_kl_per_block, irec_extra_samples, irec_beams, irec_block_steps: the irec
    coder's settings (`coding.irec.Settings`; its seed is `seed`).
  tile_pixels: tile side in image pixels of the transforms (`models.tiling`):
    None picks one from the image size, 0 never tiles.
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
  compute_dtype: str = "float32"
  irec_kl_per_block: float = 8.
  irec_extra_samples: float = 0.3
  irec_beams: int = 5
  irec_block_steps: int = 4
  tile_pixels: Optional[int] = None

  def irec_settings(self):
    """The `coding.irec.Settings` of the irec method."""
    from tfc_inference.coding import irec  # pylint: disable=import-outside-toplevel
    try:
      return irec.Settings(
          kl_per_block=float(self.irec_kl_per_block),
          extra_samples=float(self.irec_extra_samples), beams=int(self.irec_beams),
          seed=int(self.seed), block_steps=int(self.irec_block_steps))
    except ValueError as error:
      raise UserError(f"irec settings: {error}") from None

  def validate(self):
    for name in ("sga_its", "bbvi_its"):
      if getattr(self, name) < 0:
        raise UserError(f"--{name} must be >= 0, got {getattr(self, name)}")
    if self.eval_every < 1:
      raise UserError(f"--eval_every must be >= 1, got {self.eval_every}")
    if not self.schedule_scale > 0:
      raise UserError(
          f"--schedule_scale must be > 0, got {self.schedule_scale}")
    from tfc_inference.models import frozen  # pylint: disable=import-outside-toplevel
    try:
      frozen.check_dtype(self.compute_dtype)
    except ValueError as error:
      raise UserError(f"--{error}") from None
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
    self.irec_settings()
    if self.tile_pixels is not None and (self.tile_pixels < 0
                                         or self.tile_pixels % TILE_STRIDE):
      raise UserError(f"--tile must be auto, 0 or a positive multiple of "
                      f"{TILE_STRIDE} pixels, got {self.tile_pixels}")


def parse_tile(text):
  """--tile: 'auto' -> None, else an int number of pixels (checked by validate)."""
  if text is None or text.strip().lower() == "auto":
    return None
  try:
    return int(text)
  except ValueError:
    raise UserError(f"--tile must be auto, 0 or a number of pixels, got {text!r}"
                    ) from None


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
  the JPEG quality). Runs of one `variant` (a hyperprior family) form one
  curve; the widths of y and of the hidden layers may differ along it (wider
  at high rates, as in Minnen et al. and Ballé et al.).
  """
  name: str
  lmbda: float
  variant: str
  family: Optional[str] = None
  model: object = None
  config: Optional[dict] = None
  quality: Optional[int] = None



def checkpoint_root(options):
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  return options.checkpoint_dir or checkpoints.default_checkpoint_dir()
