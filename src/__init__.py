"""P3M: privacy-preserving portrait matting with PyTorch Lightning and Hydra."""
