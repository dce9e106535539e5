"""hiercodec: learned hierarchical autoregressive image models as exact, portable codecs.

    >>> import hiercodec
    >>> data = hiercodec.encode("photo.png")   # bytes of a .hc file
    >>> image = hiercodec.decode(data)         # uint8 (H, W) gray or (H, W, 2/3/4)

The API (hiercodec.api) is imported on first use, so `import hiercodec` stays light (no torch).
"""

import os
import sys

# Decoding is a long series of small steps between a few large products. OpenMP threads that spin
# while they wait make torch 20-100x slower when another process holds the cores; sleeping threads
# cost microseconds. The variable takes effect only if torch is loaded after it is set, so record
# whether it did: hiercodec.exact.quant.threads() uses extra threads only when it is in force.
_policy = os.environ.get("OMP_WAIT_POLICY")
OMP_PASSIVE = (_policy or "").upper() == "PASSIVE" or (_policy is None and "torch" not in sys.modules)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The CLI lives in the checkout's top-level cli/ folder and is installed as hiercodec.cli
# (pyproject's package-dir). When this package is imported from a checkout instead of an
# installation (`python -m pytest` puts the checkout first on sys.path), find it there too.
_CHECKOUT_CLI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli")
if os.path.isfile(os.path.join(_CHECKOUT_CLI, "main.py")):
    import importlib.abc
    import importlib.util

    class _CheckoutCLI(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "hiercodec.cli":
                return None
            return importlib.util.spec_from_file_location(name, os.path.join(_CHECKOUT_CLI, "__init__.py"),
                                                          submodule_search_locations=[_CHECKOUT_CLI])

    sys.meta_path.append(_CheckoutCLI())  # last: an installed or editable hiercodec.cli wins

from hiercodec.errors import (FormatError, HiercodecError, ImageError, IntegrityError,
                              ModelNotFoundError, OutputExistsError)

__version__ = "0.1.0"

_API = ("encode", "decode", "cut", "lossy_levels", "load_model", "list_models", "verify", "info", "VerifyResult", "LevelReport",
        "encode_set", "decode_set")
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
