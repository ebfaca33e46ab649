"""The absl plumbing behind examples/: shared flags and messages (`common`), the
train / compress / decompress commands (`commands`), and the iterative and bits-back
binaries (`iterative_binary`, `bits_back_binary`).
"""
