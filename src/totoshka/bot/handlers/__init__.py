"""Routers, one module per concern, built fresh by factory functions.

A router can be attached to one dispatcher only, so module-level singletons would
make a second bot (or a second test) impossible; `build_routers` makes new ones.
Order matters: commands first, the catch-all last (the errors router sees only errors).
"""

from __future__ import annotations

from aiogram import Router

from totoshka.bot.handlers import commands, errors, fallback, pictures, results, settings


def build_routers(album_wait: float = 0.8) -> list[Router]:
    return [
        errors.router(),
        commands.router(),
        settings.router(),
        pictures.router(album_wait),
        results.router(),
        fallback.router(),
    ]
