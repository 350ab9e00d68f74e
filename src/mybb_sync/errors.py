"""The exceptions mybb-sync raises, each mapped to one exit code by the CLI."""


class MybbSyncError(Exception):
    """Base class; the message is one line meant for a person."""

    exit_code = 1


class ConfigError(MybbSyncError):
    """Bad flags, environment, TOML or forum config: exit 2."""

    exit_code = 2


class DatabaseUnavailable(MybbSyncError):
    """The database could not be reached (refused, timed out, went away)."""


class UnsafeName(MybbSyncError):
    """A database name that cannot become a path inside the sync root."""


class InvalidContent(MybbSyncError):
    """File content that must never reach the database (empty, not UTF-8, NUL, too long)."""
