"""Conversation states (aiogram FSM). The photo being worked on lives in FSM data."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Flow(StatesGroup):
    """A photo was received and the picker shown; or we wait for the user's painting."""

    choosing_style = State()
    awaiting_painting = State()
