"""/cancel reaching a clip that is already being painted, wherever it runs.

Queued jobs are cancelled in the queue; a running photo finishes in a second or
two. A clip may paint for a minute, possibly in a Celery worker on another
machine, so /cancel also leaves a time-stamped request in the FSM storage the
bot and its workers share (its own *destiny*, beside the preferences), and the
clip's job looks at it between progress updates. A request older than the job's
start is not for it: a clip sent after /cancel is painted.
"""

from __future__ import annotations

import time

from aiogram.fsm.storage.base import BaseStorage, StorageKey

CANCEL_DESTINY = "cancel"


def cancel_key(bot_id: int, chat_id: int, user_id: int) -> StorageKey:
    return StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=user_id, destiny=CANCEL_DESTINY)


async def request_cancel(storage: BaseStorage, key: StorageKey) -> None:
    await storage.set_data(key, {"at": time.time()})


async def cancel_requested(storage: BaseStorage, key: StorageKey, since: float) -> bool:
    """Whether /cancel was sent after ``since`` (a `time.time()` value)."""
    at = (await storage.get_data(key)).get("at")
    return isinstance(at, int | float) and at >= since
