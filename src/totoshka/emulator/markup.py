"""``reply_markup`` checks: inline keyboards as Telegram validates them.

Inline keyboards belong to the message (Telegram echoes them in the returned
Message); reply keyboards, their removal and force-reply change what the user's
client shows under the input field, so the emulator keeps them on the chat.
"""

from __future__ import annotations

from typing import Any

from totoshka.emulator.errors import BUTTON_DATA_INVALID, bad_request
from totoshka.emulator.limits import Limits

_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_CANT_PARSE = "can't parse reply keyboard markup JSON object"


def _check_button(button: Any, limits: Limits) -> dict[str, Any]:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    actions = [name for name in _BUTTON_ACTIONS if button.get(name) is not None]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in actions:
        data = button["callback_data"]
        size = len(str(data).encode())
        if not isinstance(data, str) or not 1 <= size <= limits.callback_data_bytes:
            raise bad_request(BUTTON_DATA_INVALID)
    if "url" in actions and not str(button["url"]).strip():
        raise bad_request("inline keyboard button URL '' is invalid: URL host is empty")
    return {key: value for key, value in button.items() if value is not None}


def parse_reply_markup(
    markup: Any, limits: Limits, *, inline_only: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Split ``reply_markup`` into (inline keyboard for the message, keyboard for the chat)."""
    if markup is None:
        return None, None
    if not isinstance(markup, dict):
        raise bad_request(_CANT_PARSE)
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        checked = [[_check_button(button, limits) for button in row] for row in rows]
        if not any(checked):
            return None, None  # an empty keyboard is no keyboard
        return {"inline_keyboard": checked}, None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup or markup.get("remove_keyboard") or markup.get("force_reply"):
        return None, markup
    raise bad_request(_CANT_PARSE)
