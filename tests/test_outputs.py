"""Output paths are decided and checked before any work; nothing partial is left."""

import json
import glob
import math
import os
import subprocess
import sys

import pytest

from tfc_inference.coding import file_format
from tfc_inference.inference import rounding
from tfc_inference.util import image_io
from tfc_inference.util import output_paths
from tfc_inference.util import progress
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARIES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))


def run(binary, *args, cwd=None):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "examples", binary), *args],
      capture_output=True, text=True, timeout=300, cwd=cwd,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_one_image_writes_the_named_file_or_into_a_directory(tmp_path):
  target = str(tmp_path / "x.tfci")
  assert output_paths.plan(["a"], target, ".tfci", False) == [target]
  directory = str(tmp_path / "out") + "/"
  assert output_paths.plan(["a"], directory, ".tfci", False) == [
      os.path.join(directory, "a.tfci")]
  assert os.path.isdir(directory)  # created up front
  assert output_paths.plan(["a", "b"], str(tmp_path / "out"), ".tfci", False) == [
      str(tmp_path / "out" / "a.tfci"), str(tmp_path / "out" / "b.tfci")]


@pytest.mark.parametrize("names,output,message", [
    (["a"], "/no/such/dir/x.tfci", "directory /no/such/dir does not exist"),
    (["a", "b"], "single.tfci", "names one file; end it with '/'"),
    (["a", "a"], "out/", "would both be written"),
])
def test_unusable_outputs_fail_with_one_line(tmp_path, names, output, message):
  os.chdir(tmp_path)
  with pytest.raises(output_paths.OutputError, match=message) as error:
    output_paths.plan(names, output, ".tfci", False)
  assert "\n" not in str(error.value)
  assert not os.path.exists(tmp_path / "single.tfci")


def test_existing_files_need_overwrite_and_writes_are_atomic(tmp_path):
  path = tmp_path / "x.tfci"
  path.write_bytes(b"old")
  with pytest.raises(output_paths.OutputError, match="--overwrite"):
    output_paths.plan(["x"], str(path), ".tfci", False)
  output_paths.write_atomic(str(path), b"new", overwrite=True)
  assert path.read_bytes() == b"new"
  assert os.listdir(tmp_path) == ["x.tfci"]  # no temporary file left
  with pytest.raises(output_paths.OutputError):
    output_paths.write_atomic(str(path), b"newer", overwrite=False)
  assert path.read_bytes() == b"new"


def test_decoded_path():
  assert output_paths.decoded_path("a/b.tfci", None, ".tfci") == "a/b.png"
  assert output_paths.decoded_path("a/b.tfci", "c.png", ".tfci") == "c.png"


def test_binaries_check_outputs_before_loading_a_model(tmp_path):
  image = tmp_path / "img.png"
  image.write_bytes(image_io.encode_png(synthetic.test_image(8, 8, seed=1)))
  # The run does not exist: the output error must come first.
  done = run("sga.py", "compress", "no-such-run", str(image), "/no/such/dir/x.tfci")
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert "directory /no/such/dir does not exist" in done.stderr
  done = run("bb_sga.py", "compress", "no-such-run", str(image),
             str(tmp_path / "out") + "/", "--results_dir", str(image))
  assert done.returncode == 1 and "exists and is not a directory" in done.stderr
  header = file_format.CompressedFile(
      method="sga", fingerprint=b"\0" * 8, run_name="no-such-run",
      image_shape=(1, 1), y_shape=(4, 4), z_shape=(1, 1), strings=[b"", b""],
      digest=0)
  source = tmp_path / "in.tfci"
  source.write_bytes(header.to_bytes())
  done = run("sga.py", "decompress", str(source), "/no/such/dir/x.png")
  assert done.returncode == 1 and "does not exist" in done.stderr
  (tmp_path / "in.png").write_bytes(b"x")
  done = run("sga.py", "decompress", str(source))
  assert done.returncode == 1 and "--overwrite" in done.stderr
  done = run("bb_sga.py", "decompress", str(source), str(tmp_path / "o.png"),
             "--side_info_out", str(image))
  assert done.returncode == 1 and "--side_info_out" in done.stderr
  # A Bayesian AC file names the binary that decodes it.
  header.method = "bayesian_ac"
  source.write_bytes(header.to_bytes())
  done = run("sga.py", "decompress", str(source), str(tmp_path / "o.png"))
  assert done.returncode == 1
  assert "decode it with examples/bayesian_ac.py decompress" in done.stderr


def test_every_binary_help_lists_its_own_flags():
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tests", "help_flags.py"), *BINARIES],
      capture_output=True, text=True, timeout=300, cwd=ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert done.returncode == 0, done.stderr
  missing = json.loads(done.stdout.strip().splitlines()[-1])
  assert len(missing) == len(BINARIES)
  assert missing == {name: [] for name in missing}


def test_default_schedule_follows_the_iteration_count():
  assert rounding.fitted_schedule_scale(2000) == 1.
  scale = rounding.fitted_schedule_scale(300)
  tau0, c, t0 = 0.5, 1e-3, 700
  final = rounding.schedule_value("paper", 299 * scale, tau0, c, t0)
  at_2000 = rounding.schedule_value("paper", 1999, tau0, c, t0)
  assert final == pytest.approx(at_2000, rel=0.01) and final < 0.2


def test_eta_ignores_the_first_iteration(monkeypatch):
  now = [100.]
  monkeypatch.setattr(progress.time, "time", lambda: now[0])
  clock = progress.Eta(total=101)
  now[0] += 50.  # the first iteration traces
  assert math.isnan(clock.update(1))
  now[0] += 1.
  assert clock.update(2) == pytest.approx(99.)
  now[0] += 9.
  assert clock.update(11) == pytest.approx(90.)
  assert progress.format_seconds(math.nan) == "?"


def test_run_names_that_files_cannot_hold_fail_before_any_work(tmp_path):
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  with pytest.raises(checkpoints.CheckpointError, match="cannot name a run"):
    checkpoints.check_run_name("my run")
  checkpoints.check_run_name("mbt2018-num_filters=64-lmbda=0.01")
  done = run("mbt2018.py", "train", "--run_name", "a b", "--train_glob",
             str(tmp_path / "*.png"), "--checkpoint_dir", str(tmp_path))
  assert done.returncode == 1 and "cannot name a run" in done.stderr
