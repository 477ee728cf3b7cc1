"""How the store names a database error it cannot handle itself: the 503 a sender sees, and whether alertdesk
refuses webhooks at once ("cannot write") or keeps retrying ("unavailable").

Disk full is produced for real in test_full_disk*.py; these are the SQLSTATEs no test here can make PostgreSQL
raise on demand (an I/O error, the server out of memory), given as asyncpg gives them: an exception with
`sqlstate`, wrapped by SQLAlchemy.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError

from normalizers.schema import Unavailable
from ticketstore.db import NotWritable, outage_is_unavailable


class PgError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def raised(exc: Exception) -> BaseException:
    with pytest.raises(BaseException) as caught, outage_is_unavailable():
        raise exc
    return caught.value


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [("53100", "could not extend file: No space left on device"), ("58030", "could not read block 7: I/O error")],
)
def test_a_disk_that_cannot_write_is_not_writable_with_its_reason_and_code(sqlstate: str, message: str) -> None:
    error = raised(InternalError("INSERT INTO tickets", {}, PgError(sqlstate, message + "\nHINT: check the disk")))

    assert isinstance(error, NotWritable)
    assert str(error) == f"the database cannot write: {message} (SQLSTATE {sqlstate})"


@pytest.mark.parametrize(("sqlstate", "message"), [("53200", "out of memory"), ("53300", "too many connections")])
def test_a_server_short_of_memory_or_connections_is_unavailable_not_a_full_disk(sqlstate: str, message: str) -> None:
    error = raised(DBAPIError("SELECT 1", {}, PgError(sqlstate, message)))

    assert isinstance(error, Unavailable) and not isinstance(error, NotWritable)
    assert message in str(error)


def test_other_errors_pass_through_for_the_caller_to_judge() -> None:
    duplicate = IntegrityError("INSERT", {}, PgError("23505", "duplicate key"))
    assert raised(duplicate) is duplicate  # a lost race: the store retries it itself
    undefined = DBAPIError("SELECT", {}, PgError("42P01", 'relation "tickets" does not exist'))
    assert raised(undefined) is undefined  # a bug or a missing migration: never a quiet retry
