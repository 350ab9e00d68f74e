"""mybb-sync: keep a MyBB forum's templates and stylesheets and a folder of files in two-way sync."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mybb-sync")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
