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


class DiskUnavailable(MybbSyncError):
    """The sync root or the state store cannot be written (full, read-only, no permission).

    The service keeps what is pending and retries, as for a database outage."""


def reported_error(group: BaseExceptionGroup) -> MybbSyncError | None:
    """The one error to report for a task group that failed with mybb-sync errors only.

    A database outage wins over the errors it caused elsewhere. ``None``
    when anything else failed too: that is a bug, and its traceback matters.
    """
    _, rest = group.split(MybbSyncError)
    if rest is not None:
        return None
    leaves: list[MybbSyncError] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            assert isinstance(exc, MybbSyncError)
            leaves.append(exc)
    return next((e for e in leaves if isinstance(e, DatabaseUnavailable)), leaves[0])
