"""An image's geometry as the container stores it (bitstreams/FORMAT.md): the one description of
"what image is this" that the container, the families and the reports share. No torch, no bytes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    """Height, width and channels of an image of 8-bit samples: channels 1 (gray), 2 (gray +
    alpha), 3 (RGB) or 4 (RGBA)."""

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width, self.channels)

    @property
    def dims(self) -> int:
        """Number of samples, the denominator of bits/dim."""
        return self.height * self.width * self.channels

    @property
    def color(self) -> int:
        """Channels of the colour (or gray) part: 3 for RGB and RGBA, 1 for gray and gray + alpha."""
        return 3 if self.channels >= 3 else 1

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)
