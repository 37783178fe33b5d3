"""Training (needs torch/torchvision): the training loop (:mod:`.loop`), paired augmentation (:mod:`.transforms`)
and the loss (:mod:`.loss`). Architectures and checkpoints are :mod:`rockedge.models`."""
