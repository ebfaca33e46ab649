"""The evaluation runner (tfc_inference.evaluation.runner, examples/evaluate.py) on tiny inputs."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfc_inference.evaluation import rd_curves
from tfc_inference.evaluation import options as options_lib
from tfc_inference.evaluation import registry
from tfc_inference.evaluation import reports
from tfc_inference.evaluation import runner
from tfc_inference.util import image_io
from tfc_inference.util import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVALUATE = os.path.join(ROOT, "examples", "evaluate.py")
HEADER = "lmbda,bpp,est_bpp,psnr,ms_ssim,encode_seconds,decode_seconds"
RATES = np.array([0.1, 0.18, 0.29, 0.43, 0.61, 0.86])
PSNRS = np.array([27.5, 29.8, 31.6, 33.4, 35.2, 37.3])


@pytest.fixture
def images(tmp_path):
  """Two 64x64 PNGs; returns their glob."""
  folder = tmp_path / "images"
  folder.mkdir()
  for i in range(2):
    image_io.write_png(str(folder / f"img{i}.png"),
                       synthetic.test_image(64, 64, seed=10 + i))
  return str(folder / "*.png")


def _quiet(tmp_path):
  return open(tmp_path / "log.txt", "a")  # pylint: disable=consider-using-with


def _csv_lines(path):
  with open(path) as f:
    return f.read().splitlines()


def _json_files(results_dir):
  found = []
  for folder, _, files in os.walk(results_dir):
    found += [os.path.relpath(os.path.join(folder, f), results_dir)
              for f in files if f.endswith(".json")]
  return sorted(found)


def _write_rd(path, rates, psnrs):
  rd_curves.write_rd_csv(str(path), [
      dict(lmbda=0.01 * (i + 1), bpp=r, psnr=p) for i, (r, p)
      in enumerate(zip(rates, psnrs))])


@pytest.mark.parametrize("method", ["mbt2018", "sga"])
def test_csv_header_and_round_trip(method, images, tmp_path, checkpoint_dir,
                                   run_names):
  results_dir = str(tmp_path / "results")
  options = options_lib.Options(sga_its=3, batch_images=2,
                             checkpoint_dir=checkpoint_dir)
  with _quiet(tmp_path) as out:
    summary = runner.run_method(method, results_dir, images,
                                run_names["mbt2018"], options, out=out)
  assert (summary["total"], summary["done"], summary["skipped"]) == (2, 2, 0)
  csv_path = os.path.join(results_dir, f"{method}.csv")
  lines = _csv_lines(csv_path)
  assert lines[0] == HEADER and len(lines) == 2
  records = []
  for name in ("img0", "img1"):
    path = runner.result_path(results_dir, method, run_names["mbt2018"], name)
    with open(path) as f:
      records.append(json.load(f))
  for record in records:
    assert record["method"] == method and record["lmbda"] == 0.01
    assert record["bpp"] == pytest.approx(8 * record["num_bytes"] / (64 * 64))
    assert record["file_bpp"] == record["bpp"]
    assert np.isfinite(record["psnr"]) and 0 < record["ms_ssim"] <= 1
  if method == "sga":
    assert all(r["iterations"] == 3 and r["batch_size"] == 2 for r in records)
    assert records[0]["settings"]["sga_its"] == 3
  columns = rd_curves.read_rd_csv(csv_path)
  assert list(columns) == list(rd_curves.RD_COLUMNS)
  for key, result_key in [("bpp", "bpp"), ("est_bpp", "est_bpp"),
                          ("psnr", "psnr"), ("ms_ssim", "ms_ssim"),
                          ("encode_seconds", "seconds"),
                          ("decode_seconds", "decode_seconds")]:
    assert columns[key][0] == pytest.approx(
        np.mean([r[result_key] for r in records]))
  assert summary["csv"][csv_path][0]["lmbda"] == 0.01


def test_resume_skips_finished_items(images, tmp_path, checkpoint_dir, run_names,
                                     monkeypatch):
  calls = []
  original = registry.METHODS["mbt2018"]

  def counting(run, batch, options):
    calls.append([name for name, _ in batch])
    return original.encode(run, batch, options)

  monkeypatch.setitem(registry.METHODS, "mbt2018",
                      dataclasses.replace(original, encode=counting))
  results_dir = str(tmp_path / "results")
  options = options_lib.Options(checkpoint_dir=checkpoint_dir)
  with _quiet(tmp_path) as out:
    first = runner.run_method("mbt2018", results_dir, images, None, options,
                              out=out)
    assert sorted(sum(calls, [])) == ["img0", "img1"]
    paths = [runner.result_path(results_dir, "mbt2018", run_names["mbt2018"], n)
             for n in ("img0", "img1")]
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    calls.clear()
    second = runner.run_method("mbt2018", results_dir, images, None, options,
                               out=out)
    assert not calls
    assert [os.stat(p).st_mtime_ns for p in paths] == mtimes
    os.remove(paths[1])
    third = runner.run_method("mbt2018", results_dir, images, None, options,
                              out=out)
  assert calls == [["img1"]]
  assert (first["done"], second["done"], second["skipped"]) == (2, 0, 2)
  assert (third["done"], third["skipped"]) == (1, 1)
  assert len(_csv_lines(os.path.join(results_dir, "mbt2018.csv"))) == 2


def test_shards_cover_every_item_exactly_once():
  items = runner.work_list([f"run{r}" for r in range(4)],
                           [f"img{i}" for i in range(5)])
  assert len(items) == 20
  shards = [runner.shard(items, k, 3) for k in range(3)]
  merged = sum(shards, [])
  assert sorted(merged) == sorted(items) and len(set(merged)) == len(items)
  assert max(map(len, shards)) - min(map(len, shards)) <= 1
  assert shards == [runner.shard(items, k, 3) for k in range(3)]  # deterministic
  assert runner.shard(items, 0, 1) == items
  for index, count in [(3, 3), (-1, 3), (0, 0)]:
    with pytest.raises(options_lib.UserError):
      runner.shard(items, index, count)


def test_summarize_merges_shards_like_an_unsharded_run(images, tmp_path):
  options = options_lib.Options(jpeg_qualities=[30, 70])
  sharded, whole = str(tmp_path / "sharded"), str(tmp_path / "whole")
  done = 0
  with _quiet(tmp_path) as out:
    for index in range(3):
      done += runner.run_method("jpeg", sharded, images, None, options,
                                shard_index=index, num_shards=3,
                                out=out)["done"]
    runner.run_method("jpeg", whole, images, None, options, out=out)
    os.remove(os.path.join(sharded, "jpeg.csv"))
    written = runner.summarize(sharded, out=out)
  assert done == 4  # 2 qualities x 2 images, each computed by one shard
  assert _json_files(sharded) == _json_files(whole)
  assert list(written) == [os.path.join(sharded, "jpeg.csv")]
  a = rd_curves.read_rd_csv(os.path.join(sharded, "jpeg.csv"))
  b = rd_curves.read_rd_csv(os.path.join(whole, "jpeg.csv"))
  for key in ("lmbda", "bpp", "psnr", "ms_ssim"):  # times differ between runs
    np.testing.assert_array_equal(a[key], b[key])


def test_jpeg_writes_one_row_per_quality(images, tmp_path):
  results_dir = str(tmp_path / "results")
  with _quiet(tmp_path) as out:
    runner.run_method("jpeg", results_dir, images, "ignored*",
                      options_lib.Options(jpeg_qualities=[90, 20, 50]), out=out)
  lines = _csv_lines(os.path.join(results_dir, "jpeg.csv"))
  assert lines[0] == HEADER
  columns = rd_curves.read_rd_csv(os.path.join(results_dir, "jpeg.csv"))
  np.testing.assert_array_equal(columns["lmbda"], [20., 50., 90.])
  assert np.all(np.diff(columns["bpp"]) > 0)
  assert np.all(np.diff(columns["psnr"]) > 0)
  assert np.all(np.isnan(columns["est_bpp"]))
  with open(runner.result_path(results_dir, "jpeg", "quality=50", "img0")) as f:
    record = json.load(f)
  assert record["quality"] == 50 and record["chroma_subsampling"] == "4:2:0"
  assert record["bpp"] == pytest.approx(8 * record["num_bytes"] / (64 * 64))


def test_bits_back_bpp_is_net_and_file_bpp_is_kept(images, tmp_path,
                                                   checkpoint_dir, run_names):
  results_dir = str(tmp_path / "results")
  options = options_lib.Options(checkpoint_dir=checkpoint_dir)
  with _quiet(tmp_path) as out:
    runner.run_method("bb_plain", results_dir, images, None, options, out=out)
  path = runner.result_path(results_dir, "bb_plain", run_names["mbt2018_bb"],
                            "img0")
  with open(path) as f:
    record = json.load(f)
  assert record["side_info_bits"] > 0
  assert record["file_bpp"] == pytest.approx(8 * record["num_bytes"] / 4096)
  assert record["bpp"] == pytest.approx(
      (8 * record["num_bytes"] - record["side_info_bits"]) / 4096)
  columns = rd_curves.read_rd_csv(os.path.join(results_dir, "bb_plain.csv"))
  records = [record]
  with open(runner.result_path(results_dir, "bb_plain", run_names["mbt2018_bb"],
                               "img1")) as f:
    records.append(json.load(f))
  assert columns["bpp"][0] == pytest.approx(np.mean([r["bpp"] for r in records]))
  assert columns["bpp"][0] < np.mean([r["file_bpp"] for r in records])


def test_runs_pattern_accepts_several_globs(checkpoint_dir, run_names):
  options = options_lib.Options(checkpoint_dir=checkpoint_dir)
  sga = registry.get_method("sga")
  both = f"zzz*,{run_names['mbt2018']},{run_names['bmshj2018']}"
  assert sorted(runner.find_runs(sga, both, options)) == sorted(
      [run_names["mbt2018"], run_names["bmshj2018"]])
  assert runner.find_runs(sga, run_names["mbt2018"] + ",", options) == [
      run_names["mbt2018"]]
  with pytest.raises(options_lib.UserError, match="schedule_scale"):
    options_lib.Options(schedule_scale=-1.).validate()


def test_default_runs_are_the_curve_runs(tmp_path):
  """Two runs of one family at one lambda: the wider is that lambda's point of
  the curve, the narrower is used only when named."""
  from tfc_inference.models import checkpoints  # pylint: disable=import-outside-toplevel
  widths = {"mbt2018-num_filters=64-num_latents=192-lmbda=0.01": ("mbt2018", 64, 192),
            "mbt2018-num_filters=128-num_latents=192-lmbda=0.01": ("mbt2018", 128, 192),
            "mbt2018-num_filters=64-lmbda=0.005": ("mbt2018", 64, None),
            "bmshj2018-num_filters=64-lmbda=0.01": ("bmshj2018", 64, None)}
  for name, (family, filters, latents) in widths.items():
    (tmp_path / name).mkdir()
    checkpoints.write_config(str(tmp_path / name), dict(
        model=family, num_filters=filters, num_latents=latents,
        lmbda=float(name.split("=")[-1])))
    (tmp_path / name / checkpoints.WEIGHTS_FILE).touch()
  wide, narrow = sorted(n for n in widths if "0.01" in n and n.startswith("mbt2018-"))
  assert checkpoints.curve_runs(str(tmp_path)) == sorted(
      set(widths) - {narrow})
  assert checkpoints.run_at("mbt2018", 0.01, str(tmp_path)) == wide
  options = options_lib.Options(checkpoint_dir=str(tmp_path))
  assert runner.find_runs(registry.get_method("mbt2018"), None, options) == sorted(
      ["mbt2018-num_filters=64-lmbda=0.005", wide])
  assert runner.find_runs(registry.get_method("mbt2018"), narrow, options) == [narrow]


def test_user_errors(images, tmp_path, checkpoint_dir):
  options = options_lib.Options(checkpoint_dir=checkpoint_dir)
  with pytest.raises(options_lib.UserError, match="unknown method"):
    runner.run_method("nope", str(tmp_path), images, None, options)
  with pytest.raises(options_lib.UserError, match="matches no run"):
    runner.run_method("sga", str(tmp_path), images, "zzz*", options)
  with pytest.raises(options_lib.UserError, match="no usable run"):
    runner.run_method("bb_plain", str(tmp_path), images, "bmshj2018-*", options)
  with pytest.raises(options_lib.UserError, match="matches no file"):
    runner.run_method("jpeg", str(tmp_path), str(tmp_path / "*.xyz"), None,
                      options)
  with pytest.raises(options_lib.UserError, match="smaller than --crop"):
    runner.center_crop(np.zeros((10, 20, 3), np.uint8), (16, 16))
  assert options_lib.parse_crop("16x24") == (16, 24)
  with pytest.raises(options_lib.UserError):
    options_lib.parse_crop("16by24")


def test_bd_rate_command(tmp_path):
  a, b, paper = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "paper.csv"
  _write_rd(a, RATES, PSNRS)
  _write_rd(b, 0.9 * RATES, PSNRS)
  paper.write_text("".join(f"{r}, {p}\n" for r, p in zip(RATES, PSNRS)))
  with _quiet(tmp_path) as out:
    bd_rate, bd_psnr = reports.bd_rate_command(str(a), str(a), out=out)
    assert bd_rate == pytest.approx(0., abs=1e-9)
    assert bd_psnr == pytest.approx(0., abs=1e-9)
    bd_rate, bd_psnr = reports.bd_rate_command(str(paper), str(b), out=out)
    assert bd_rate == pytest.approx(-10., abs=1e-6) and bd_psnr > 0
  done = subprocess.run([sys.executable, EVALUATE, "bd_rate", str(a), str(b)],
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 0, done.stderr
  assert "BD-rate of B relative to A: -10.00 %" in done.stdout
  done = subprocess.run(
      [sys.executable, EVALUATE, "bd_rate", str(a), str(tmp_path / "missing")],
      capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 1
  assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_plot_command(tmp_path):
  pytest.importorskip("matplotlib")
  a, b, paper = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "paper.csv"
  _write_rd(a, RATES, PSNRS)
  rd_curves.write_rd_csv(str(b), [
      dict(lmbda=i, bpp=0.9 * r, psnr=p, ms_ssim=0.9 + 0.01 * i)
      for i, (r, p) in enumerate(zip(RATES, PSNRS))])
  paper.write_text("".join(f"{r}, {p}\n" for r, p in zip(1.1 * RATES, PSNRS)))
  with _quiet(tmp_path) as out:
    written = reports.plot_command([str(a), str(b)], str(tmp_path / "plots"),
                                   reference=str(paper), out=out)
  names = sorted(os.path.basename(p) for p in written)
  assert names == ["rd_ms_ssim.png", "rd_psnr.png", "savings_psnr.png"]
  for path in written:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_help_documents_every_flag():
  done = subprocess.run([sys.executable, EVALUATE, "--help"],
                        capture_output=True, text=True, timeout=120, check=False)
  # absl's --help exits with status 1.
  for flag in ["method", "runs", "images", "results_dir", "checkpoint_dir",
               "sga_its", "bbvi_its", "eval_every", "crop", "batch_images",
               "jpeg_qualities", "seed", "progress_every", "shard_index",
               "num_shards", "csv", "out", "reference", "bac_lambdas",
               "irec_kl_per_block", "irec_extra_samples", "irec_beams",
               "irec_block_steps", "schedule_scale", "title", "max_bpp"]:
    assert f"--{flag}:" in done.stdout, flag
  for method in registry.METHODS:
    assert method in done.stdout
