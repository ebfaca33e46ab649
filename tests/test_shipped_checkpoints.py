"""Every run shipped in checkpoints/ loads, is described, and codes exactly.

These are trained models, so here the entropy model's estimate must match the
real file size (tiny test models are too poorly calibrated for that check).
Runs whose estimate already missed the real Kodak rate by more than 2%
(est_bpp and bpp in their config.json, written with the checkpoints) are
expected to miss here too: that check is marked xfail for them, the exact round
trip is not.
"""

import os

import numpy as np
import pytest

from tfc_inference.coding import bits_back
from tfc_inference.coding import codec
from tfc_inference.coding import file_format
from tfc_inference.models import checkpoints
from tfc_inference.models import hyperprior
from tfc_inference.models import shipped_runs
from tfc_inference.util import synthetic

# Hyperprior families; bls2017_vae runs (Bayesian AC) have their own loader and tests.
SHIPPED = [run for run in checkpoints.list_runs(checkpoints.default_checkpoint_dir())
           if run.split("-")[0] in hyperprior.MODEL_CLASSES]
REQUIRED_CONFIG = ["model", "model_class", "num_filters", "lmbda", "steps",
                   "batchsize", "patchsize", "lr_schedule", "train_data", "kodak"]
KODAK_KEYS = ["bpp", "psnr", "ms_ssim", "images"]


def kodak_estimate_error(config):
  """|est_bpp / bpp - 1| of the run on Kodak, from its config.json (None if not
  measured; `benchmarks/evaluate_checkpoints.py` records both)."""
  kodak = config.get("kodak", {})
  if not kodak.get("est_bpp"):
    return None
  return abs(kodak["est_bpp"] / kodak["bpp"] - 1.)


def check_estimate(config, within):
  error = kodak_estimate_error(config)
  if not within and error is not None and error > 0.02:
    pytest.xfail(f"rate estimate known to be off by {100 * error:.0f}% on Kodak "
                 "for this briefly fine-tuned run (tail latents: likelihood "
                 "bound vs. overflow coding, see checkpoints/README.md)")
  assert within


def test_at_least_one_run_is_shipped():
  assert SHIPPED, "checkpoints/ holds no run"


def test_the_default_run_is_shipped():
  assert shipped_runs.BASE_RUN in SHIPPED


def test_run_at_finds_the_curve_run_of_a_family_and_lambda():
  run = checkpoints.run_at("mbt2018", 0.01)
  assert run in checkpoints.curve_runs()
  assert run.startswith("mbt2018-num_filters=") and run.endswith("-lmbda=0.01")
  with pytest.raises(checkpoints.CheckpointError, match="no run of mbt2018"):
    checkpoints.run_at("mbt2018", 0.123)


def test_one_curve_run_per_family_and_lambda():
  """Each family's Kodak curve (results/kodak/<family>.csv) has one point per
  lambda, and every shipped hyperprior lambda has a point."""
  configs = {run: checkpoints.read_config(checkpoints.run_dir(run)) for run in SHIPPED}
  curve = checkpoints.curve_runs()
  keys = [(configs[run]["model"], configs[run]["lmbda"]) for run in curve]
  assert len(keys) == len(set(keys))
  assert set(keys) == {(c["model"], c["lmbda"]) for c in configs.values()}


@pytest.mark.parametrize("run", SHIPPED)
def test_shipped_run_config_and_round_trip(run):
  model, config, run_name = checkpoints.load_run(run)
  for key in REQUIRED_CONFIG:
    assert key in config, f"{run}/config.json lacks {key}"
  assert run == hyperprior.run_name(config["model"], config["num_filters"],
                                    config["lmbda"], config.get("num_latents"))
  # Kodak numbers measured on all 24 images by benchmarks/evaluate_checkpoints.py.
  for key in KODAK_KEYS + (["net_bpp"] if config["model"] == "mbt2018_bb" else []):
    assert key in config["kodak"], f"{run}: kodak results lack {key}"
  assert config["kodak"]["images"] == 24
  with open(os.path.join(checkpoints.default_checkpoint_dir(), "README.md")) as f:
    assert f"`{run}`" in f.read(), f"checkpoints/README.md does not list {run}"
  image = synthetic.test_image(256, 256, seed=12)
  x = codec.to_batch(image)
  if config["model"] == "mbt2018_bb":
    y, _ = model.analyze(x)
    y_hat = np.round(y.numpy())
    data, info = bits_back.encode_file(model, run_name, "mbt2018_bb", image, y_hat)
    _, decoded = bits_back.decode_file(model, file_format.CompressedFile.from_bytes(data))
    np.testing.assert_array_equal(decoded["y_hat"], y_hat)
    assert decoded["side_info"] == info["side_info"]
    # The estimate is of the payload: the header (run name, shapes, the bits-back
    # bookkeeping; about 1100 bits) is not coded with the model. The coder itself
    # lands within tens of bits of the estimate.
    (payload,) = file_format.CompressedFile.from_bytes(data).strings
    header_bits = 8 * (len(data) - len(payload))
    net_payload_bits = 8 * len(data) - header_bits - info["side_info_bits"]
    check_estimate(config, abs(net_payload_bits - info["est_net_bits"])
                   <= 0.01 * info["est_net_bits"] + 64)
    return
  y_hat, z_hat = codec.amortized_latents(model, x)
  estimate = model.true_rd(x, y_hat, z_hat)
  data = codec.encode_range_coded(model, run_name, config["model"], image, y_hat,
                                  z_hat)
  compressed = file_format.CompressedFile.from_bytes(data)
  decoded_y, _ = codec.range_coded_decode_fn(model, compressed)
  np.testing.assert_array_equal(decoded_y, y_hat.numpy())
  payload_bits = 8 * sum(len(s) for s in compressed.strings)
  header_bits = 8 * len(data) - payload_bits
  est_bits = float(estimate["bits"][0])
  # Header, 1%, and range-coder termination (a few bytes per string).
  check_estimate(
      config, abs(8 * len(data) - est_bits) <= header_bits + 0.01 * est_bits + 64)
