"""The demo's default image, obtained offline.

matplotlib ships a public-domain photograph (U.S. Navy portrait of Grace Hopper) in
its sample data; we read it from the installed package. Without matplotlib, a
procedural image is used instead.
"""

from tfc_inference.util import image_io
from tfc_inference.util import synthetic


def default_image(warn=print):
  """Returns (name, uint8 [H, W, 3])."""
  try:
    from matplotlib import cbook  # pylint: disable=import-outside-toplevel
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return "grace_hopper", image_io.read_image(path, warn=warn)
  except (ImportError, OSError, ValueError):
    warn("matplotlib's sample photo is not available; using a generated image "
         "(install with `pip install -e .[plots]` for the photo)")
    return "synthetic", synthetic.test_image(512, 768, seed=0)
