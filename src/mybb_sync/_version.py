"""The installed distribution's version (``0.0.0`` in a source tree never installed)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mybb-sync")
except PackageNotFoundError:
    __version__ = "0.0.0"
