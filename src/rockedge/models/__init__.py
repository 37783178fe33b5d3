"""Models shared by training, export and the PyTorch backend: architectures and checkpoints (needs torch)."""
