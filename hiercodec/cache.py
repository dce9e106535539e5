"""The cache folder for fetched data and compiled kernels: $HIERCODEC_CACHE or ~/.cache/hiercodec."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("HIERCODEC_CACHE") or Path.home() / ".cache" / "hiercodec")
    path.mkdir(parents=True, exist_ok=True)
    return path
