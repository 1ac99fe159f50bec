"""The playground: try the bot in a browser, no Telegram account or token needed.

`totoshka playground` (see :mod:`totoshka.playground.runner`) starts three things
on this machine: the local Bot API emulator, the real bot pointed at it, and a
small Telegram-like web chat (:mod:`totoshka.playground.page`, static files in
``web/``) in which each browser tab plays a different Telegram user through the
emulator's control API. Nothing here is needed to run the bot against Telegram.
"""
