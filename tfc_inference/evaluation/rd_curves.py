"""Rate-distortion evaluation: CSV I/O, Bjontegaard metrics and plots.

Units throughout: rates in bits per pixel (bpp), PSNR in dB, rate differences
in percent. Only numpy is imported here; the figures are drawn by `plots`.

Files:
  * Our RD CSV (`write_rd_csv` / `read_rd_csv`): header `RD_COLUMNS`, one row
    per lambda holding means over the evaluated images (see `aggregate`).
  * `read_curve` also reads the headerless `bpp, psnr` CSVs published with
    Yang et al. (2020) and tfc's `results/` .txt files (`#` comment lines, then
    `bpp, quality` lines).

Bjontegaard metrics (`bd_rate`, `bd_psnr`) follow VCEG-M33: each curve is fit
by a cubic polynomial (log-rate against PSNR, or PSNR against log-rate), the
fits are integrated exactly over the interval where both curves have data, and
the average gap is reported.
"""

import csv
import math

import numpy as np

RD_COLUMNS = ("lmbda", "bpp", "est_bpp", "psnr", "ms_ssim", "encode_seconds",
              "decode_seconds")

# Per-image result key averaged into each RD column by `aggregate`.
_RESULT_KEYS = {"bpp": "bpp", "est_bpp": "est_bpp", "psnr": "psnr",
                "ms_ssim": "ms_ssim", "encode_seconds": "seconds",
                "decode_seconds": "decode_seconds"}

_MAX_DEGREE = 3


# ----------------------------------------------------------------------------
# CSV I/O.


def _format_value(value):
  if value is None:
    return ""
  value = float(value)
  return "" if math.isnan(value) else repr(value)


def write_rd_csv(path, rows):
  """Writes RD rows (dicts keyed by `RD_COLUMNS`) to a CSV file at `path`.

  Units: bpp and est_bpp in bits per pixel, psnr in dB, ms_ssim linear in
  [0, 1], times in seconds. Missing, None or NaN values are written empty.
  Raises ValueError for keys that are not RD columns.
  """
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(RD_COLUMNS)
    for index, row in enumerate(rows):
      unknown = sorted(set(row) - set(RD_COLUMNS))
      if unknown:
        raise ValueError(f"row {index}: unknown RD column(s) {unknown}")
      writer.writerow([_format_value(row.get(key)) for key in RD_COLUMNS])


def _parse_float(text, where):
  text = text.strip()
  if not text:
    return math.nan
  try:
    return float(text)
  except ValueError:
    raise ValueError(f"{where}: not a number: {text!r}") from None


def _read_lines(path):
  try:
    with open(path) as f:
      return f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"cannot read {path}: {e}") from None


def _parse_table(path, lines):
  """Header row + data rows (non-empty `lines`) -> dict name -> float array."""
  table = list(csv.reader(lines))
  header = [name.strip() for name in table[0]]
  columns = {name: [] for name in header}
  for number, cells in enumerate(table[1:], start=1):
    where = f"{path}: data row {number}"
    if len(cells) != len(header):
      raise ValueError(f"{where}: expected {len(header)} values, "
                       f"found {len(cells)}")
    for name, cell in zip(header, cells):
      columns[name].append(_parse_float(cell, where))
  return {name: np.array(values, dtype=float)
          for name, values in columns.items()}


def read_rd_csv(path):
  """Reads a CSV with a header row into a dict column name -> float array.

  Empty cells become NaN. Columns are those of the file's header (normally
  `RD_COLUMNS`, see `write_rd_csv` for units).
  """
  lines = [line for line in _read_lines(path) if line.strip()]
  if not lines:
    raise ValueError(f"{path}: empty file")
  return _parse_table(path, lines)


def _split_fields(line):
  return line.replace(",", " ").split()


def _is_header(line):
  """True if the first field of `line` is not a number (a column name)."""
  fields = _split_fields(line)
  try:
    float(fields[0])
  except ValueError:
    return True
  return False


def read_curve(path, quality="psnr"):
  """Reads one rate-distortion curve: returns (bpp, quality), sorted by bpp.

  Accepts:
    * our RD CSV or any CSV whose header names `bpp` and `quality` columns
      (rows with either value empty are skipped);
    * headerless `bpp, quality` lines, e.g. the CSVs of Yang et al. (2020);
    * tfc results .txt files: `#` comment lines, then `bpp, quality` lines.
  For headerless files the second column is the quality, whatever `quality`
  says. Units: bpp in bits per pixel; quality as stored (PSNR in dB).

  Raises:
    ValueError: with a one-line message, if the file cannot be read or parsed
      or holds no data.
  """
  lines = [line.strip() for line in _read_lines(path)]
  lines = [line for line in lines if line and not line.startswith("#")]
  if not lines:
    raise ValueError(f"{path}: no data lines")
  if _is_header(lines[0]):
    columns = _parse_table(path, lines)
    missing = [name for name in ("bpp", quality) if name not in columns]
    if missing:
      raise ValueError(f"{path}: header lacks column(s) {missing}")
    bpp, values = columns["bpp"], columns[quality]
    keep = ~(np.isnan(bpp) | np.isnan(values))
    bpp, values = bpp[keep], values[keep]
  else:
    bpp, values = _read_pairs(path, lines)
  if not bpp.size:
    raise ValueError(f"{path}: no complete (bpp, {quality}) rows")
  order = np.argsort(bpp, kind="stable")
  return bpp[order], values[order]


def _read_pairs(path, lines):
  pairs = []
  for number, line in enumerate(lines, start=1):
    fields = _split_fields(line)
    if len(fields) < 2:
      raise ValueError(f"{path}: data line {number}: expected 'bpp, quality', "
                       f"got {line!r}")
    where = f"{path}: data line {number}"
    pairs.append((_parse_float(fields[0], where),
                  _parse_float(fields[1], where)))
  array = np.array(pairs, dtype=float)
  return array[:, 0], array[:, 1]


def _mean_or_none(values):
  values = [float(v) for v in values if v is not None]
  values = [v for v in values if not math.isnan(v)]
  return float(np.mean(values)) if values else None


def aggregate(results):
  """Groups per-image result dicts by `lmbda`; returns RD rows of means.

  Each result holds `lmbda` and some of bpp, est_bpp (bits per pixel), psnr
  (dB), ms_ssim, seconds (encode time, s) and decode_seconds (s). Each returned
  row (a dict keyed by `RD_COLUMNS`, sorted by lambda) holds the mean of each
  quantity over the images of that lambda, ignoring missing/None/NaN values
  (None if no image has the value); `encode_seconds` is the mean of `seconds`.
  """
  groups = {}
  for index, result in enumerate(results):
    if result.get("lmbda") is None:
      raise ValueError(f"result {index} has no 'lmbda'")
    groups.setdefault(float(result["lmbda"]), []).append(result)
  rows = []
  for lmbda in sorted(groups):
    row = {"lmbda": lmbda}
    for column, key in _RESULT_KEYS.items():
      row[column] = _mean_or_none(r.get(key) for r in groups[lmbda])
    rows.append(row)
  return rows


# ----------------------------------------------------------------------------
# Bjontegaard metrics.


def _as_curve(rate, psnr, name):
  rate = np.asarray(rate, dtype=float).ravel()
  psnr = np.asarray(psnr, dtype=float).ravel()
  if rate.shape != psnr.shape:
    raise ValueError(f"curve {name}: {rate.size} rates but {psnr.size} PSNRs")
  if rate.size < 2:
    raise ValueError(f"curve {name}: need at least 2 points, got {rate.size}")
  if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(psnr))):
    raise ValueError(f"curve {name}: rates and PSNRs must be finite")
  if np.any(rate <= 0):
    raise ValueError(f"curve {name}: rates must be positive")
  return rate, psnr


def _degree(x):
  """Cubic, or lower when there are fewer than 4 distinct points (n - 1)."""
  return min(_MAX_DEGREE, np.unique(x).size - 1)


def _overlap(x_a, x_b, what):
  low = max(x_a.min(), x_b.min())
  high = min(x_a.max(), x_b.max())
  if not high > low:
    raise ValueError(f"the curves do not overlap in {what}: "
                     f"[{x_a.min():g}, {x_a.max():g}] vs "
                     f"[{x_b.min():g}, {x_b.max():g}]")
  return low, high


def _fit(x, y, center):
  """Polynomial fit of y against (x - center); centering conditions the fit."""
  degree = _degree(x)
  if degree < 1:
    raise ValueError("need at least 2 distinct abscissae to fit a curve")
  return np.polyfit(x - center, y, degree)


def _mean_gap(x_a, y_a, x_b, y_b, what):
  """Mean of fit_b - fit_a over the overlap of x; fits integrated exactly."""
  low, high = _overlap(x_a, x_b, what)
  center = 0.5 * (low + high)
  gap = np.polysub(_fit(x_b, y_b, center), _fit(x_a, y_a, center))
  integral = np.polyint(gap)
  width = high - low
  return (np.polyval(integral, high - center) -
          np.polyval(integral, low - center)) / width


def bd_rate(rate_a, psnr_a, rate_b, psnr_b):
  """Bjontegaard delta rate of curve B relative to curve A, in percent.

  Fits log(rate) as a polynomial in PSNR for each curve, averages the gap
  between the fits over the PSNR interval covered by both curves (exact
  integral), and returns 100 * (exp(mean gap) - 1). Negative means B needs
  fewer bits than A for the same quality (e.g. -10 for 10% smaller files).

  Args:
    rate_a, psnr_a: curve A (the reference): rates (bpp, or any rate unit used
      for both curves) and PSNRs (dB), same length, any order.
    rate_b, psnr_b: curve B.

  The fit is cubic (the usual BD definition) when a curve has 4 or more
  distinct PSNRs; with fewer points the degree drops to (number of distinct
  points - 1), i.e. a parabola through 3 points or a line through 2. Curves
  are assumed monotone; no extrapolation is done.

  Raises:
    ValueError: if a curve has fewer than 2 points, non-positive or non-finite
      values, or the curves' PSNR ranges do not overlap.
  """
  rate_a, psnr_a = _as_curve(rate_a, psnr_a, "A")
  rate_b, psnr_b = _as_curve(rate_b, psnr_b, "B")
  gap = _mean_gap(psnr_a, np.log(rate_a), psnr_b, np.log(rate_b), "PSNR")
  return float(100. * np.expm1(gap))


def bd_psnr(rate_a, psnr_a, rate_b, psnr_b):
  """Bjontegaard delta PSNR of curve B relative to curve A, in dB.

  Fits PSNR as a polynomial in log(rate) for each curve and returns the mean
  of fit_B - fit_A over the log-rate interval covered by both curves (exact
  integral). Positive means B has higher quality at the same rate. Arguments,
  degree reduction for fewer than 4 points and errors as for `bd_rate`.
  """
  rate_a, psnr_a = _as_curve(rate_a, psnr_a, "A")
  rate_b, psnr_b = _as_curve(rate_b, psnr_b, "B")
  gap = _mean_gap(np.log(rate_a), psnr_a, np.log(rate_b), psnr_b, "log-rate")
  return float(gap)


def bd_rate_vs_quality(rate_a, psnr_a, rate_b, psnr_b, num=50):
  """Pointwise rate difference of curve B relative to A as a function of PSNR.

  Uses the same fits as `bd_rate` (log-rate as a polynomial in PSNR) and
  evaluates 100 * (rate_B(q) / rate_A(q) - 1) at `num` evenly spaced PSNRs q
  spanning the overlap of the two curves.

  Returns:
    (psnr, rate_change): arrays of length `num`; psnr in dB, rate_change in
    percent, negative where B needs fewer bits (the sign of `bd_rate`).
  """
  rate_a, psnr_a = _as_curve(rate_a, psnr_a, "A")
  rate_b, psnr_b = _as_curve(rate_b, psnr_b, "B")
  if num < 2:
    raise ValueError(f"num must be at least 2, got {num}")
  low, high = _overlap(psnr_a, psnr_b, "PSNR")
  center = 0.5 * (low + high)
  fit_a = _fit(psnr_a, np.log(rate_a), center)
  fit_b = _fit(psnr_b, np.log(rate_b), center)
  psnr = np.linspace(low, high, num)
  gap = np.polyval(fit_b, psnr - center) - np.polyval(fit_a, psnr - center)
  return psnr, 100. * np.expm1(gap)
