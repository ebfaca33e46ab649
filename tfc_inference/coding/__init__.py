"""Entropy coding and files: the container (`file_format`), range-coded hyperprior
files (`codec`), lossy bits-back (`bits_back`), Bayesian arithmetic coding
(`bayesian_ac` core, `bayesian_ac_tables`, `bayesian_ac_image`), relative
entropy coding (`irec` core, `irec_image`), and the checked decode path of every
method (`decoding`).

Imports `inference`, `models` and `util`; never `evaluation` or `cli`.
"""
