"""Exact integer probability tables -> constriction ANS; bits-back. The only importer of constriction.

- ``tables``: integer frequency tables (normalize, check, bits).
- ``ans``: ``StackCoder``, one chunk's stack of coded groups.
- ``bitsback``: bits-back coding of latent-variable samples on a ``StackCoder``.
"""

from hiercodec.coding.ans import CODER_ID, CODER_VERSION, StackCoder
from hiercodec.coding.bitsback import BitsBackStats, bits_back_pop, bits_back_push
from hiercodec.coding.tables import PRECISION_BITS, bits, check, normalize

__all__ = [
    "CODER_ID",
    "CODER_VERSION",
    "PRECISION_BITS",
    "BitsBackStats",
    "StackCoder",
    "bits",
    "bits_back_pop",
    "bits_back_push",
    "check",
    "normalize",
]
