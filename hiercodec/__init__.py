"""hiercodec: learned hierarchical autoregressive image models as exact, portable codecs."""

from hiercodec.errors import HiercodecError

__version__ = "0.1.0"

__all__ = ["HiercodecError", "__version__"]
