"""The one retry policy: exponential backoff with full jitter (tenacity), then a ConcurrencyError.

Used for work that lost a race with another writer and may simply be run again: a chunk
write transaction after a deadlock or a busy database, a block-state id taken by another
process. The work must be replayable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from voxeldb.errors import ConcurrencyError

__all__ = ["ATTEMPTS", "FIRST_WAIT", "MAX_WAIT", "retry"]

logger = logging.getLogger("voxeldb.retry")

_T = TypeVar("_T")

ATTEMPTS = 50
FIRST_WAIT = 0.002
"""Seconds: the first wait is uniform in [0, 2 ms], then the bound doubles..."""
MAX_WAIT = 0.1
"""... up to 100 ms."""


def _never(_: object) -> bool:
    return False


def retry(
    work: Callable[[], _T],
    *,
    transient: Callable[[BaseException], bool] = _never,
    again: Callable[[_T], bool] = _never,
    what: str,
    attempts: int = ATTEMPTS,
) -> _T:
    """``work()``, run again while it raises a ``transient`` error or its result is ``again``.

    After ``attempts`` runs a :class:`~voxeldb.errors.ConcurrencyError` saying ``what`` kept
    conflicting is raised (from the last error, if there was one). Any other error is raised
    at once.
    """

    def log(state: RetryCallState) -> None:
        outcome = state.outcome
        cause = outcome.exception() if outcome is not None and outcome.failed else "a lost race"
        logger.debug("retrying %s after %s (attempt %d)", what, cause, state.attempt_number)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT),
        retry=retry_if_exception(transient) | retry_if_result(again),
        before_sleep=log,
    )
    try:
        return retrying(work)
    except RetryError as exc:
        last = exc.last_attempt
        cause = last.exception() if last.failed else None
        raise ConcurrencyError(
            f"{what} kept conflicting with other writers after {attempts} attempts"
        ) from cause
