"""Errors a person can act on. Every failure hiercodec reports is a HiercodecError."""


class HiercodecError(Exception):
    """Base class: the message is one line that says what is wrong and what to do."""


class ImageError(HiercodecError):
    """The input image cannot be read or is of a kind hiercodec does not code."""


class FormatError(HiercodecError):
    """A .hc file is corrupt, truncated or not a .hc file at all."""


class ModelNotFoundError(HiercodecError):
    """The model named (or the model a .hc file was made with) is not installed."""


class IntegrityError(FormatError):
    """A CRC32 check failed: the file is damaged and its image is not returned."""


class OutputExistsError(HiercodecError):
    """The output path exists and overwriting was not asked for."""
