"""Round-robin between users: where a job stands in the fair order.

Both backends serve users in rotation — the next job is the oldest job of the user
served least recently — so one user's ten photos do not starve everyone else. Given
the users in rotation order and each user's queued jobs oldest first, the future
order is: every user's 1st job in rotation order, then every user's 2nd job, and so
on (users with fewer jobs drop out of later rounds).
"""

from __future__ import annotations

from collections.abc import Sequence


def round_robin_position(lengths: Sequence[int], user_index: int, job_index: int) -> int:
    """1-based place of the ``job_index``-th job (0-based) of user number ``user_index``.

    ``lengths[i]`` is how many jobs the i-th user in rotation order has queued. All
    earlier rounds are complete (each user contributes ``min(len, job_index)``), then
    the users ahead in this round that still have a job this deep.
    """
    if not 0 <= job_index < lengths[user_index]:
        raise IndexError("job_index out of range for that user")
    earlier_rounds = sum(min(n, job_index) for n in lengths)
    ahead_this_round = sum(1 for n in lengths[:user_index] if n > job_index)
    return earlier_rounds + ahead_this_round + 1
