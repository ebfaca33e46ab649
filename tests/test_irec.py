"""Relative entropy coding (tfc_inference.coding.irec) on synthetic Gaussians."""

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tfc_inference.coding import irec
from tfc_inference.util import exact_math

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_posterior(seed=0, dims_per_group=300):
  """Four groups: near the prior, moderate, informative, very informative."""
  rng = np.random.default_rng(seed)
  sigma = np.repeat([0.98, 0.5, 0.1, 0.02], dims_per_group)
  mu = rng.normal(0., 1., sigma.size) * np.repeat([0.05, 1., 1., 1.], dims_per_group)
  groups = np.repeat(np.arange(4), dims_per_group)
  return mu, sigma, groups


def test_exact_math_is_accurate_and_gives_fixed_bits():
  x = np.random.default_rng(0).uniform(1e-300, 2., 10000)
  np.testing.assert_allclose(exact_math.log(x), np.log(x), rtol=1e-14, atol=1e-300)
  e = np.random.default_rng(1).uniform(-60., 5., 10000)
  np.testing.assert_allclose(exact_math.exp2(e), np.exp2(e), rtol=1e-14)
  u = np.random.default_rng(2).uniform(0., 1., 10000)
  np.testing.assert_allclose(exact_math.cos_two_pi(u), np.cos(2 * np.pi * u),
                             atol=1e-14)
  # These bits are the contract between encoder and decoder on every machine:
  # if they change, files written elsewhere no longer decode.
  assert int(exact_math.hash_keys(1, 2, 3)) == 16074505032026948619
  assert [float(v).hex() for v in exact_math.normals(7, np.arange(4))] == [
      "-0x1.2181474ec2e6ap+0", "-0x1.3fa09db417954p-1", "0x1.3747fc66cdf80p+1",
      "-0x1.c56fb9d92b751p-2"]
  # The same bits, over many inputs, as the first implementation (frexp and a
  # gather per quadrant): every speed-up must keep them.
  crc = lambda a: zlib.crc32(np.ascontiguousarray(a, "<f8").tobytes())
  u = np.arange(1 << 16) / 2. ** 16
  u = np.concatenate([u, u[1:] - 2. ** -53])  # quadrant edges from both sides
  assert crc(exact_math.cos_two_pi(u)) == 683681190
  normal = np.ldexp(1. + np.arange(8192) / 8192., np.arange(8192) % 1100 - 1020)
  assert crc(exact_math.log(normal)) == 4236944876
  assert crc(exact_math.log([5e-324, 1e-310, 2.2e-308, 1.])) == 725817655
  assert crc(exact_math.normals(5, np.arange(7)[:, None],
                                np.arange(5000)[None, :])) == 3077415277
  g = exact_math.normals(3, np.arange(200000))
  assert abs(g.mean()) < 0.01 and abs(g.std() - 1.) < 0.01
  assert abs(np.mean(g ** 4) - 3.) < 0.05


@pytest.mark.parametrize("kl_per_block,extra_samples", [(6., 0.1), (8., 0.3)])
def test_coded_length_follows_kl(kl_per_block, extra_samples):
  """The index stream costs about (1 + extra_samples) * KL bits."""
  mu, sigma, groups = synthetic_posterior()
  settings = irec.Settings(kl_per_block, extra_samples, beams=1, seed=4)
  data, _, info = irec.compress(mu, sigma, 0., 1., settings, groups)
  ratio = info["index_bits"] / info["kl_bits"]
  assert 1. + extra_samples - 0.05 < ratio < 1. + extra_samples + 0.1
  assert info["coded_bits"] == 8 * len(data)
  assert info["coded_bits"] - info["index_bits"] == 8 * (2 * 4 + 4)


def test_sample_follows_the_posterior_and_beams_help():
  """With enough candidates the coded sample is a plausible posterior sample
  (its log q/p near the KL, standardized residuals about N(0, 1)); more beams
  find samples of higher total weight at the same rate."""
  mu, sigma, groups = synthetic_posterior(seed=1)
  loc, scale = 0.5, 3.
  weights = {}
  for beams in (1, 4):
    settings = irec.Settings(8., 0.4, beams=beams, seed=2)
    _, sample, info = irec.compress(loc + scale * mu, scale * sigma, loc, scale,
                                    settings, groups)
    weights[beams] = info["log_weight_bits"]
    residual = ((sample - loc) / scale - mu) / sigma
    assert abs(residual.mean()) < 0.15
    assert 0.6 < residual.std() < 1.3
  assert weights[4] > weights[1] > 0.8 * info["kl_bits"]


def _greedy_importance_sampling(m, s, blocks, settings):
  """Reference: per block and step, the candidate of largest weight
  q(a_k | b_{k-1}) / p(a_k), from the conditional target written out."""
  z = np.zeros(m.size)
  for i, block in enumerate(blocks):
    mb, sb = m[block.dims], s[block.dims]
    b, previous = np.zeros(len(block.dims)), 0.
    for step, fraction in enumerate(block.fractions):
      delta, remaining = fraction - previous, 1. - previous
      a = np.sqrt(delta) * exact_math.normals(
          settings.seed, i, step, np.arange(block.num_candidates)[:, None],
          np.arange(len(block.dims))[None, :])
      precision = 1. / sb ** 2 - 1. + 1. / remaining
      z_mean = (mb / sb ** 2 + b / remaining) / precision
      mean = delta / remaining * (z_mean - b)
      var = (delta / remaining) ** 2 / precision + delta * (remaining - delta) / remaining
      log_w = np.sum(-0.5 * (a - mean) ** 2 / var - 0.5 * np.log(var)
                     + 0.5 * a ** 2 / delta + 0.5 * np.log(delta), axis=1)
      b = b + a[np.argmax(log_w)]
      previous = fraction
    z[block.dims] = b
  return z


def test_one_beam_is_greedy_importance_sampling():
  mu, sigma, groups = synthetic_posterior(seed=2, dims_per_group=40)
  settings = irec.Settings(6., 0.2, beams=1, seed=9, block_steps=3)
  stats = irec.group_statistics(mu, sigma, groups, 4)
  blocks = irec.plan(groups, stats, settings)
  assert max(len(b.fractions) for b in blocks) > 1  # several auxiliary steps
  _, sample, _ = irec.encode(mu, sigma, 0., 1., blocks, settings)
  np.testing.assert_allclose(sample, _greedy_importance_sampling(mu, sigma, blocks,
                                                                 settings),
                             rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beams", [1, 3])
def test_scoring_in_pieces_chooses_the_same_paths(monkeypatch, beams):
  """Steps too large for one scoring pass (Omega 16 on wide blocks) are scored
  piece by piece with a running top `beams`: the same paths and sample."""
  mu, sigma, groups = synthetic_posterior(seed=3, dims_per_group=40)
  settings = irec.Settings(6., 0.2, beams=beams, seed=5)
  stats = irec.group_statistics(mu, sigma, groups, 4)
  blocks = irec.plan(groups, stats, settings)
  whole = irec.encode(mu, sigma, 0., 1., blocks, settings)
  monkeypatch.setattr(irec, "_MAX_STEP_FLOATS", 100)  # a few candidates a piece
  pieces = irec.encode(mu, sigma, 0., 1., blocks, settings)
  for a, b in zip(whole[0], pieces[0]):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(whole[1], pieces[1])
  np.testing.assert_allclose(whole[2], pieces[2], rtol=1e-9)


def test_decodes_exactly_in_a_separate_process(tmp_path):
  mu, sigma, groups = synthetic_posterior(seed=3, dims_per_group=50)
  settings = irec.Settings(8., 0.2, beams=3, seed=11)
  data, sample, _ = irec.compress(mu, sigma, 0.1, 2., settings, groups)
  (tmp_path / "data.bin").write_bytes(data)
  np.save(tmp_path / "groups.npy", groups)
  script = (
      "import sys, numpy as np\n"
      "from tfc_inference.coding import irec\n"
      f"data = open({str(tmp_path / 'data.bin')!r}, 'rb').read()\n"
      f"groups = np.load({str(tmp_path / 'groups.npy')!r})\n"
      f"settings = irec.Settings(8., 0.2, beams=3, seed=11)\n"
      f"z = irec.decompress(data, 0.1, 2., ({mu.size},), settings, groups)\n"
      "sys.stdout.buffer.write(z.astype('<f8').tobytes())\n")
  done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                        timeout=300, cwd=ROOT)
  assert done.returncode == 0, done.stderr.decode()
  assert done.stdout == sample.astype("<f8").tobytes()


def test_wrong_seed_or_truncated_data_is_an_error():
  mu, sigma, groups = synthetic_posterior(seed=4, dims_per_group=30)
  settings = irec.Settings(6., 0.2, seed=1)
  data, _, _ = irec.compress(mu, sigma, 0., 1., settings, groups)
  with pytest.raises(ValueError, match="CRC"):
    irec.decompress(data, 0., 1., mu.shape, irec.Settings(6., 0.2, seed=2), groups)
  for bad in (data[:-4], data[:-1], data[:5]):
    with pytest.raises(ValueError):
      irec.decompress(bad, 0., 1., mu.shape, settings, groups)


def test_settings_are_checked():
  for kwargs in (dict(kl_per_block=0.5), dict(kl_per_block=30.),
                 dict(extra_samples=-0.1), dict(beams=0), dict(seed=-1),
                 dict(block_steps=0)):
    with pytest.raises(ValueError):
      irec.Settings(**kwargs)
