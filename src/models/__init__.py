"""P3M-Net models: the network, its components and checkpoint loading."""

from src.models.checkpoints import load_model
from src.models.components.p3mnet import P3MNet, P3MOutput

__all__ = ["P3MNet", "P3MOutput", "load_model"]
