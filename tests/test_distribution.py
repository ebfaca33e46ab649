"""Training under tf.distribute: mirrored over two logical CPUs equals one device."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tfc_inference.util import image_io
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MBT2018 = os.path.join(ROOT, "examples", "mbt2018.py")


def _run(args, env=None, timeout=300):
  """Runs a Python script; `env` entries set (or, with None, unset) variables."""
  environment = dict(os.environ)
  for key, value in (env or {}).items():
    if value is None:
      environment.pop(key, None)
    else:
      environment[key] = value
  return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                        timeout=timeout, env=environment, cwd=ROOT)


def test_mirrored_replicas_match_one_device_and_train(tmp_path):
  done = _run([os.path.join(ROOT, "tests", "mirrored_training.py"), str(tmp_path)])
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result["replicas"] == 2
  # The same global batch: equal loss terms, equal summed gradients (float
  # summation order aside).
  for key in ("loss", "bpp", "mse"):
    single, mirrored = result[key]
    assert mirrored == pytest.approx(single, rel=1e-5), key
  assert result["gradient_error"] < 1e-4
  assert result["after"] < result["before"]
  assert [line.split()[1] for line in result["logged"]] == ["20/40", "40/40"]
  assert result["exported_steps"] == 40
  assert result["round_trip_psnr"] > 0


def _train_images(tmp_path):
  folder = tmp_path / "train"
  folder.mkdir()
  for i in range(3):
    image_io.write_png(str(folder / f"{i}.png"), synthetic.test_image(80, 80, seed=i))
  return str(folder / "*.png")


def _train_args(tmp_path, *extra):
  return [MBT2018, "train", "--num_filters", "8", "--patchsize", "64",
          "--train_glob", _train_images(tmp_path), "--checkpoint_dir",
          str(tmp_path / "ckpt"), "--log_every", "2", *extra]


def test_train_binary_runs_mirrored_on_logical_cpus(tmp_path):
  done = _run(_train_args(tmp_path, "--strategy", "mirrored", "--cpu_replicas", "2",
                          "--batchsize", "4", "--last_step", "4"))
  assert done.returncode == 0, done.stderr[-3000:]
  assert "on 2 replicas (mirrored)" in done.stdout
  assert "step 4/4" in done.stdout
  run = tmp_path / "ckpt" / "mbt2018-num_filters=8-lmbda=0.01"
  with open(run / "config.json") as f:
    config = json.load(f)
  assert config["steps"] == 4 and config["batchsize"] == 4
  assert (run / "weights.npz").exists()


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(("localhost", 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def test_train_binary_runs_multi_worker_on_two_local_workers(tmp_path):
  """Two processes on localhost as the hosts of TF_CONFIG train in lockstep; only
  worker 0 (the chief) exports."""
  cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
  args = _train_args(tmp_path, "--strategy", "multi_worker", "--batchsize", "4",
                     "--last_step", "4")
  workers = [subprocess.Popen(
      [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, cwd=ROOT, env=dict(os.environ, TF_CONFIG=json.dumps(
          {"cluster": cluster, "task": {"type": "worker", "index": index}})))
             for index in range(2)]
  outputs = [worker.communicate(timeout=300) for worker in workers]
  for worker, (out, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
    assert "on 2 replicas (multi_worker)" in out
  logged = [[line for line in out.splitlines() if line.startswith("step 4/4")]
            for out, _ in outputs]
  # Synchronous replicas: both workers report the same global-batch loss.
  assert logged[0] and logged[0][0].split()[2:4] == logged[1][0].split()[2:4]
  run = tmp_path / "ckpt" / "mbt2018-num_filters=8-lmbda=0.01"
  with open(run / "config.json") as f:
    assert json.load(f)["steps"] == 4
  assert (run / "weights.npz").exists()
  assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("extra, env, message", [
    (["--strategy", "mirrored", "--cpu_replicas", "2", "--batchsize", "3"], {},
     "does not split over 2 replicas"),
    (["--cpu_replicas", "2"], {}, "needs --strategy mirrored"),
    (["--strategy", "multi_worker"], {"TF_CONFIG": None}, "TF_CONFIG"),
])
def test_bad_strategy_settings_fail_in_one_line_before_training(tmp_path, extra, env,
                                                                message):
  done = _run(_train_args(tmp_path, "--last_step", "2", *extra), env=env)
  assert done.returncode != 0
  assert message in done.stderr
  assert "Traceback" not in done.stderr
  assert not (tmp_path / "ckpt" / "mbt2018-num_filters=8-lmbda=0.01" / "train").exists()
