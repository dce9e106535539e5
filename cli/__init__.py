"""Command-line interface (installed as hiercodec.cli)."""
