"""The trained codecs: hyperprior families (`hyperprior`), the Gaussian VAE of
Bayesian AC (`vae`), their transforms and weights, and run folders (`checkpoints`).

Imports only `util`.
"""
