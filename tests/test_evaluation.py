"""Tests of RD CSV I/O, Bjontegaard metrics and plots (tfc_inference.evaluation.rd_curves)."""

import math

import numpy as np
import pytest

from tfc_inference.evaluation import plots
from tfc_inference.evaluation import rd_curves

# A made-up, monotone RD curve shaped like a learned codec on Kodak.
RATES = np.array([0.1, 0.18, 0.29, 0.43, 0.61, 0.86, 1.14])
PSNRS = np.array([27.5, 29.8, 31.6, 33.4, 35.2, 37.3, 39.1])


def test_curve_against_itself_is_zero():
  assert rd_curves.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(
      0., abs=1e-9)
  assert rd_curves.bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(
      0., abs=1e-9)


@pytest.mark.parametrize("scale, expected", [(0.9, -10.), (1.1, 10.)])
def test_scaled_rates_give_scaled_bd_rate(scale, expected):
  bd = rd_curves.bd_rate(RATES, PSNRS, scale * RATES, PSNRS)
  assert bd == pytest.approx(expected, abs=1e-6)


def test_bd_psnr_of_shifted_curve():
  assert rd_curves.bd_psnr(RATES, PSNRS, RATES, PSNRS + 0.5) == pytest.approx(
      0.5, abs=1e-9)


def test_bd_rate_with_few_points_lowers_degree():
  bd = rd_curves.bd_rate(RATES[:3], PSNRS[:3], 0.9 * RATES[:3], PSNRS[:3])
  assert bd == pytest.approx(-10., abs=1e-6)
  with pytest.raises(ValueError):
    rd_curves.bd_rate(RATES[:1], PSNRS[:1], RATES[:1], PSNRS[:1])


def test_bd_rate_needs_overlap():
  with pytest.raises(ValueError, match="overlap"):
    rd_curves.bd_rate(RATES, PSNRS, RATES, PSNRS + 20.)


def test_bd_rate_vs_quality():
  psnr, change = rd_curves.bd_rate_vs_quality(RATES, PSNRS, 0.9 * RATES,
                                              PSNRS, num=7)
  assert psnr[0] == pytest.approx(PSNRS[0]) and psnr[-1] == pytest.approx(
      PSNRS[-1])
  np.testing.assert_allclose(change, -10., atol=1e-6)


def test_rd_csv_round_trip(tmp_path):
  rows = [dict(lmbda=0.01, bpp=0.25, est_bpp=0.24, psnr=30.125, ms_ssim=0.95,
               encode_seconds=1.5, decode_seconds=0.25),
          dict(lmbda=0.02, bpp=1 / 3, psnr=32.0)]
  path = tmp_path / "rd.csv"
  rd_curves.write_rd_csv(path, rows)
  assert path.read_text().splitlines()[0] == (
      "lmbda,bpp,est_bpp,psnr,ms_ssim,encode_seconds,decode_seconds")
  table = rd_curves.read_rd_csv(path)
  assert set(table) == set(rd_curves.RD_COLUMNS)
  for key in rd_curves.RD_COLUMNS:
    assert table[key][0] == rows[0][key]
  assert table["bpp"][1] == 1 / 3 and table["psnr"][1] == 32.
  assert math.isnan(table["est_bpp"][1]) and math.isnan(table["ms_ssim"][1])
  bpp, psnr = rd_curves.read_curve(path)
  np.testing.assert_array_equal(bpp, [0.25, 1 / 3])
  np.testing.assert_array_equal(psnr, [30.125, 32.])


def test_read_curve_headerless_csv(tmp_path):
  path = tmp_path / "paper.csv"
  path.write_text("0.290266, 31.731318\n0.095602, 27.619021\n"
                  "0.185259, 29.934814\n")
  bpp, psnr = rd_curves.read_curve(path)
  np.testing.assert_allclose(bpp, [0.095602, 0.185259, 0.290266])
  np.testing.assert_allclose(psnr, [27.619021, 29.934814, 31.731318])


def test_read_curve_tfc_results_file(tmp_path):
  path = tmp_path / "codec.txt"
  path.write_text("# Aggregate rate-distortion data for \"X\" on kodak.\n"
                  "# The first column contains bits per pixel (bpp) values.\n"
                  "#\n\n0.023857, 23.787652\n0.028540, 24.169736\n")
  bpp, psnr = rd_curves.read_curve(path)
  np.testing.assert_allclose(bpp, [0.023857, 0.028540])
  np.testing.assert_allclose(psnr, [23.787652, 24.169736])


@pytest.mark.parametrize("text", ["", "# only comments\n", "0.1, abc\n",
                                  "0.1\n", "bpp,quality\n0.1,0.9\n"])
def test_read_curve_rejects_bad_files(tmp_path, text):
  path = tmp_path / "bad.txt"
  path.write_text(text)
  with pytest.raises(ValueError):
    rd_curves.read_curve(path)


def test_read_curve_missing_file(tmp_path):
  with pytest.raises(ValueError, match="cannot read"):
    rd_curves.read_curve(tmp_path / "missing.txt")


def test_aggregate_groups_by_lambda():
  results = [
      dict(lmbda=0.02, bpp=1.0, est_bpp=0.9, psnr=34., ms_ssim=0.98,
           seconds=2., decode_seconds=0.2),
      dict(lmbda=0.01, bpp=0.5, est_bpp=0.4, psnr=30., ms_ssim=0.96,
           seconds=1., decode_seconds=0.1),
      dict(lmbda=0.02, bpp=2.0, est_bpp=1.9, psnr=36., ms_ssim=None,
           seconds=4., decode_seconds=0.4),
  ]
  rows = rd_curves.aggregate(results)
  assert [row["lmbda"] for row in rows] == [0.01, 0.02]
  assert rows[0]["bpp"] == 0.5 and rows[0]["encode_seconds"] == 1.
  assert rows[1]["bpp"] == pytest.approx(1.5)
  assert rows[1]["est_bpp"] == pytest.approx(1.4)
  assert rows[1]["psnr"] == pytest.approx(35.)
  assert rows[1]["ms_ssim"] == pytest.approx(0.98)
  assert rows[1]["encode_seconds"] == pytest.approx(3.)
  assert rows[1]["decode_seconds"] == pytest.approx(0.3)
  assert set(rows[0]) == set(rd_curves.RD_COLUMNS)


def test_plots_write_png(tmp_path):
  pytest.importorskip("matplotlib")
  curves = {"base": (RATES, PSNRS), "better": (0.85 * RATES, PSNRS)}
  rd_path = tmp_path / "rd.png"
  plots.plot_rd(curves, rd_path, ylabel="PSNR (dB)")
  savings_path = tmp_path / "savings.png"
  plots.plot_savings((RATES, PSNRS), {"better": curves["better"]},
                     savings_path)
  for path in (rd_path, savings_path):
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_styles_are_one_per_method_and_readable():
  text, colour, line = plots.style("sga")
  assert text == "SGA [M1]" and line == "-"
  published = plots.style("sga-psnr")
  assert published[1] == colour and published[2] == "--"
  assert "published" in published[0]
  assert plots.style("published: jpeg420")[1] == plots.style("jpeg")[1]
  assert plots.style("sga@bmshj2018")[0] == "SGA [M1] (bmshj2018)"
  assert plots.style("something else") == ("something else", None, "-")
  colours = [plots.style(m)[1] for m in ("mbt2018", "bmshj2018", "sga", "bb_sga",
                                         "map", "ste", "unoise", "danneal",
                                         "bb_no_sga", "bb_plain", "jpeg",
                                         "bayesian_ac")]
  assert len(set(colours)) == len(colours)
