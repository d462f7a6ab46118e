"""The abstract model: every network reports its trainable parameter count."""
from abc import abstractmethod

from torch import nn


class BaseModel(nn.Module):
    """Base class for all networks of the repo."""

    @abstractmethod
    def forward(self, *inputs):
        """The forward pass; subclasses document their tensor shapes."""
        raise NotImplementedError

    def num_parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __str__(self) -> str:
        return f"{super().__str__()}\nTrainable parameters: {self.num_parameters():,}"
