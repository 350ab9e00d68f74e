"""mybb-sync: keep a MyBB forum's templates and stylesheets and a folder of files in two-way sync.

The public API is what this module exports: run the service in your own
anyio task group with :func:`serve`, steer it through the
:class:`ServiceHandle` it hands back, and build its :class:`Settings` by
hand or with :func:`load_settings` (flags > environment > TOML, as the
command line does). Every error it raises is a :class:`MybbSyncError`
with a one-line message. Everything else is internal and may change.
"""

from ._version import __version__
from .config import Database, Settings, load_settings
from .errors import ConfigError, DatabaseUnavailable, DiskUnavailable, MybbSyncError, UnsafeName
from .handle import ServiceHandle, Status
from .serve import serve

__all__ = [
    "ConfigError",
    "Database",
    "DatabaseUnavailable",
    "DiskUnavailable",
    "MybbSyncError",
    "ServiceHandle",
    "Settings",
    "Status",
    "UnsafeName",
    "__version__",
    "load_settings",
    "serve",
]
