"""JPEG, the baseline every curve is compared with: tf.io.encode_jpeg, 4:2:0.

`code_image` writes and decodes one JPEG (baseline, chroma subsampled 4:2:0, as
tfc's published JPEG curves) and measures it. The evaluation suite's `jpeg`
method (`encode`, `list_runs`, `load_run`) sweeps `Options.jpeg_qualities`, one
run per quality; the Bayesian AC sweep calls `code_image` directly.

Units: bpp from the real file size, PSNR in dB, MS-SSIM linear, times in seconds.
"""

import time

from tfc_inference.evaluation import options as options_lib


def code_image(image, quality):
  """Encodes uint8 `image` [H, W, 3] at `quality` (0-100) and decodes it again.

  Returns a dict with bpp, num_bytes, psnr, ms_ssim, mse, seconds (encode),
  decode_seconds, height, width, quality and chroma_subsampling.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_inference.util import metrics  # pylint: disable=import-outside-toplevel
  start = time.time()
  data = tf.io.encode_jpeg(image, format="rgb", quality=int(quality),
                           chroma_downsampling=True).numpy()
  seconds = time.time() - start
  start = time.time()
  decoded = tf.io.decode_jpeg(data, channels=3).numpy()
  decode_seconds = time.time() - start
  if decoded.shape != image.shape:
    raise RuntimeError(f"JPEG decoded to {decoded.shape}, not {image.shape}")
  height, width = image.shape[:2]
  return dict(
      bpp=metrics.bits_per_pixel(len(data), height, width), num_bytes=len(data),
      psnr=metrics.psnr(image, decoded), ms_ssim=metrics.ms_ssim(image, decoded),
      mse=metrics.mse(image, decoded), seconds=seconds,
      decode_seconds=decode_seconds, height=height, width=width,
      quality=int(quality), chroma_subsampling="4:2:0")


def list_runs(options, pattern):  # pylint: disable=unused-argument
  """One run per quality of the sweep, named `quality=Q`."""
  return [f"quality={int(q)}" for q in sorted(set(options.jpeg_qualities))]


def load_run(name, options):  # pylint: disable=unused-argument
  quality = int(name.split("=", 1)[1])
  return options_lib.Run(name=name, lmbda=float(quality), variant="jpeg",
                         family="jpeg", quality=quality)


def encode(run, batch, options):  # pylint: disable=unused-argument
  """The `jpeg` method: each image of `batch` at `run.quality`."""
  results = []
  for _, image in batch:
    result = code_image(image, run.quality)
    results.append(dict(result, file_bpp=result["bpp"], est_bpp=None))
  return results
