"""hiercodec: learned hierarchical autoregressive image models as exact, portable codecs.

    >>> import hiercodec
    >>> data = hiercodec.encode("photo.png")   # bytes of a .hc file
    >>> image = hiercodec.decode(data)         # uint8 (H, W) gray or (H, W, 2/3/4)

The API (hiercodec.api) is imported on first use, so `import hiercodec` stays light (no torch).
"""

from hiercodec.errors import (FormatError, HiercodecError, ImageError, IntegrityError,
                              ModelNotFoundError, OutputExistsError)

__version__ = "0.1.0"

_API = ("encode", "decode", "load_model", "list_models", "verify", "info", "VerifyResult", "LevelResult")
_IMAGES = ("load_image", "save_image")

__all__ = ["HiercodecError", "ImageError", "FormatError", "IntegrityError", "ModelNotFoundError",
           "OutputExistsError", "__version__", *_API, *_IMAGES]


def __getattr__(name: str):
    if name in _API:
        from hiercodec import api

        return getattr(api, name)
    if name in _IMAGES:
        from hiercodec import images

        return getattr(images, name)
    raise AttributeError(f"module 'hiercodec' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
