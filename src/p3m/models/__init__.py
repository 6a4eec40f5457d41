"""P3M-Net models: the network, its components and checkpoint loading."""

from p3m.models.checkpoints import load_model
from p3m.models.components.p3mnet import P3MNet, P3MOutput

__all__ = ["P3MNet", "P3MOutput", "load_model"]
