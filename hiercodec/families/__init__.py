"""Model families: the Family contract (`family`), the registry (`registry`), the level types
(`base`, `raster`, `alpha`, `latent`) and one module per family of DESIGN.md, each registering
itself on import."""

from hiercodec.families import agave, grayscale, ham, pixelcnn, pixelvae, pyramid, toy, vqvae2  # noqa: F401  (they register)
from hiercodec.families.registry import build_family, family_names, registration

__all__ = ["build_family", "family_names", "registration"]
