"""Data augmentation on whole batches: random translations and horizontal flips, drawn from (seed, step).

A policy is written as a short text, ``"shift:2"`` or ``"shift:2,flip"``: ``shift:N`` moves every
image by a random whole number of pixels in [-N, N] along each axis, filling the uncovered border
with black (the same as padding by N and cropping at random), and ``flip`` mirrors half of the images
left to right (for clothes, never for digits). It works on the stored uint8 images ``(B, H, W, C)``,
before they become float, with one gather for the whole batch and no Python loop over images.

The random choices come from a generator seeded with (seed, global step), never from torch's global
generator: a run interrupted and resumed from a checkpoint draws the same augmentation as one that
was never interrupted, and under torchrun every process draws the choices of the whole batch and
keeps its own share, so N processes see the same images as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:  # torch is imported where batches are augmented, not where a policy is read
    import torch

# (seed, step) -> one 63-bit generator seed: two large odd multipliers (from SplitMix64) spread
# neighbouring seeds and steps far apart, so no two (seed, step) pairs of a run share a stream.
_SEED_FACTOR, _STEP_FACTOR = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9


@dataclass(frozen=True)
class Augmentation:
    shift: int = 0  # pixels, each way
    flip: bool = False

    def __str__(self) -> str:
        return ",".join(([f"shift:{self.shift}"] if self.shift else []) + (["flip"] if self.flip else []))

    def draw(self, count: int, seed: int, step: int) -> torch.Tensor:
        """The choices for ``count`` images at this step: int64 (count, 3) = row offset, column offset, flip.

        Offsets are in [0, 2 * shift], the corner of the crop in the padded image.
        """
        import torch

        generator = torch.Generator().manual_seed((seed * _SEED_FACTOR + step * _STEP_FACTOR) % 2**63)
        offsets = torch.randint(0, 2 * self.shift + 1, (count, 2), generator=generator)
        flips = (torch.rand(count, generator=generator) < 0.5) & self.flip
        return torch.cat([offsets, flips[:, None].long()], dim=1)

    def apply(self, images: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, H, W, C) and their choices (B, 3) from ``draw`` -> augmented images, same shape."""
        import torch

        if images.dim() != 4 or choices.shape != (len(images), 3):
            raise ValueError(
                f"Augmentation.apply needs images (B, H, W, C) and choices (B, 3). "
                f"Received: images {tuple(images.shape)}, choices {tuple(choices.shape)}"
            )
        choices = choices.to(images.device)
        batch, height, width, channels = images.shape
        if self.shift:
            pad = self.shift
            padded = images.new_zeros(batch, height + 2 * pad, width + 2 * pad, channels)
            padded[:, pad : pad + height, pad : pad + width] = images
            rows = choices[:, :1] + torch.arange(height, device=images.device)  # (B, H)
            columns = choices[:, 1:2] + torch.arange(width, device=images.device)  # (B, W)
            images = padded[
                torch.arange(batch, device=images.device)[:, None, None], rows[:, :, None], columns[:, None, :]
            ]  # (B, H, W, C)
        if self.flip:
            images = torch.where(choices[:, 2, None, None, None].bool(), images.flip(2), images)
        return images


def parse_augment(text: str | None) -> Augmentation | None:
    """``"shift:2,flip"`` -> Augmentation(shift=2, flip=True); None or "" or "none" -> None."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    shift, flip = 0, False
    for part in (piece.strip().lower() for piece in text.split(",")):
        name, _, value = part.partition(":")
        if name == "flip" and not value:
            flip = True
        elif name == "shift" and value.isdigit() and int(value) >= 1:
            shift = int(value)
        else:
            raise CnnlabError(
                f"--augment: cannot read {part!r}; write shift:N (N pixels, at least 1), flip, "
                f"or both, e.g. 'shift:2,flip'. Received: {text!r}"
            )
    return Augmentation(shift, flip)
