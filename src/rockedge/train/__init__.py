"""Training side (needs torch/torchvision): model builders, checkpoints, data pipeline, training loop."""
