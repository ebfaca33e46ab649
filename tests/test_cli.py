"""The binaries end to end, in separate processes (as a user runs them)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfc_inference.util import image_io
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, *args, checkpoint_dir=None):
  env = dict(os.environ)
  if checkpoint_dir:
    env["TFC_INFERENCE_CHECKPOINTS"] = checkpoint_dir
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", binary), *args],
      capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("binary,prefix", [("mbt2018.py", "mbt2018"),
                                           ("bmshj2018.py", "bmshj2018"),
                                           ("mbt2018_bb.py", "mbt2018_bb")])
def test_compress_decompress_in_separate_processes(binary, prefix, tmp_path,
                                                   checkpoint_dir, run_names):
  image = synthetic.test_image(70, 90, seed=21)
  source = tmp_path / "in.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  compressed, decoded = tmp_path / "in.tfci", tmp_path / "out.png"
  results = tmp_path / "results"
  args = ["compress", run_names[prefix], str(source), str(compressed),
          f"--results_dir={results}"]
  done = run(binary, *args, checkpoint_dir=checkpoint_dir)
  assert done.returncode == 0, done.stderr
  with open(results / "in.json") as f:
    result = json.load(f)
  for key in ["bpp", "est_bpp", "psnr", "ms_ssim", "mse", "seconds"]:
    assert key in result
  assert result["bpp"] == pytest.approx(
      8 * os.path.getsize(compressed) / (70 * 90))
  extra = [f"--side_info_out={tmp_path / 'xi.bin'}"] if prefix == "mbt2018_bb" \
      else []
  done = run(binary, "decompress", str(compressed), str(decoded), *extra,
             checkpoint_dir=checkpoint_dir)
  assert done.returncode == 0, done.stderr
  reconstruction = image_io.read_image(str(decoded))
  assert reconstruction.shape == image.shape
  psnr = 10 * np.log10(255 ** 2 / np.mean(
      (reconstruction.astype(float) - image.astype(float)) ** 2))
  assert psnr == pytest.approx(result["psnr"], abs=1e-9)
  if prefix == "mbt2018_bb":
    assert "checksum OK" in done.stdout
    assert os.path.getsize(tmp_path / "xi.bin") * 8 == result["side_info_bits"]
  # Nothing is overwritten without --overwrite.
  again = run(binary, *args, checkpoint_dir=checkpoint_dir)
  assert again.returncode != 0 and "--overwrite" in again.stderr


def test_user_errors_exit_nonzero_without_traceback(tmp_path, checkpoint_dir,
                                                    run_names):
  bad = tmp_path / "bad.png"
  bad.write_text("hello")
  done = run("mbt2018.py", "compress", run_names["mbt2018"], str(bad),
             str(tmp_path / "x.tfci"), checkpoint_dir=checkpoint_dir)
  assert done.returncode != 0
  assert "Traceback" not in done.stderr and "not a readable image" in done.stderr
  garbage = tmp_path / "garbage.tfci"
  garbage.write_bytes(b"TFCI" + os.urandom(300))
  done = run("mbt2018.py", "decompress", str(garbage), checkpoint_dir=checkpoint_dir)
  assert done.returncode != 0 and "checksum" in done.stderr
  assert "Traceback" not in done.stderr


def test_help_documents_flags():
  done = run("mbt2018.py", "--help")  # absl exits with status 1 after --help
  for flag in ["--lambda", "--num_filters", "--checkpoint_dir", "--train_glob",
               "--batchsize", "--patchsize", "--last_step", "--lr", "--seed",
               "--init_from", "--results_dir", "--[no]overwrite"]:
    assert flag in done.stdout


def test_evaluate_binary_traces_the_same_model_as_eager_code(
    tmp_path, checkpoint_dir, run_names):
  """`evaluate.py run --method sga`'s first true loss (traced code in the binary's
  process) equals the amortized loss computed eagerly here; it once started from
  a wrong value because TF was first imported inside absl.app.run."""
  from tfc_inference.inference import iterative  # pylint: disable=g-import-not-at-top
  from tfc_inference.models import checkpoints  # pylint: disable=g-import-not-at-top
  image = synthetic.test_image(64, 64, seed=5)
  source = tmp_path / "img.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  results = tmp_path / "results"
  done = run("evaluate.py", "run", "--method", "sga", "--sga_its", "1",
             "--runs", run_names["mbt2018"], f"--images={source}",
             f"--results_dir={results}", checkpoint_dir=checkpoint_dir)
  assert done.returncode == 0, done.stderr
  with open(results / "sga" / run_names["mbt2018"] / "img.json") as f:
    record = json.load(f)
  model, _, _ = checkpoints.load_run(run_names["mbt2018"], checkpoint_dir)
  x = tf.cast(image[None], tf.float32)
  y, z = model.analyze(x)
  eager_loss = iterative.IterativeInference(
      model, iterative.InferenceConfig()).true_loss(x, y, z, (64, 64))[0]
  assert record["init_loss"] == pytest.approx(float(eager_loss[0]), rel=1e-4)


def test_short_runs_anneal_and_record_their_schedule(tmp_path, checkpoint_dir,
                                                     run_names):
  """`--sga_its 30` fits the paper's schedule to 30 iterations (it would never
  anneal with t0 = 700), says so, and the JSON records the schedule used."""
  image = synthetic.test_image(64, 64, seed=8)
  source = tmp_path / "img.png"
  source.write_bytes(tf.io.encode_png(image).numpy())
  for binary, prefix, extra in [
      ("sga.py", "mbt2018", ["--sga_its", "30"]),
      ("bb_sga.py", "mbt2018_bb", ["--sga_its", "30", "--bbvi_its", "5"])]:
    results = tmp_path / binary
    done = run(binary, "compress", run_names[prefix], str(source),
               str(tmp_path / f"{binary}.tfci"), f"--results_dir={results}",
               "--progress_every", "10", *extra, checkpoint_dir=checkpoint_dir)
    assert done.returncode == 0, done.stderr
    assert "scale 66.6667" in done.stdout and "ETA ?" in done.stdout
    with open(results / "img.json") as f:
      result = json.load(f)
    assert result["schedule_scale"] == pytest.approx(2000 / 30)
    assert (result["tau0"], result["t0"]) == (0.5, 700)
    assert result["final_tau"] == pytest.approx(
        min(0.5, 0.5 * np.exp(-1e-3 * (29 * 2000 / 30 - 700))))
    assert result["final_tau"] < 0.2
    assert 0 < result["est_bpp"] < 2 * result["bpp"]
