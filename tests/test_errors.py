"""Which error a failed task group is reported as (pure)."""

from __future__ import annotations

from mybb_sync.errors import DatabaseUnavailable, MybbSyncError, UnsafeName, reported_error


def test_a_group_of_one_mybb_sync_error_is_reported_as_that_error() -> None:
    error = UnsafeName("bad name")
    assert reported_error(ExceptionGroup("tg", [error])) is error


def test_a_database_outage_is_reported_over_the_errors_it_caused_elsewhere() -> None:
    outage = DatabaseUnavailable("gone")
    group = ExceptionGroup("tg", [MybbSyncError("write failed"), ExceptionGroup("inner", [outage])])
    assert reported_error(group) is outage


def test_a_group_holding_anything_else_is_not_reduced_to_one_error() -> None:
    group = ExceptionGroup("tg", [DatabaseUnavailable("gone"), KeyError("bug")])
    assert reported_error(group) is None
