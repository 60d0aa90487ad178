"""What a handler works with while routing one message, and small reply builders."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from shared.channels.base import (
    Button,
    ButtonsReply,
    ListReply,
    ListRow,
    ListSection,
    Reply,
    TextReply,
)
from shared.funnel.schema import ButtonSpec, Funnel
from shared.funnel.text import render
from shared.routing.types import ConversationState, RouteEvent

logger = logging.getLogger(__name__)

HISTORY_KEY = "history"
VIEW_KEY = "view"
MENU_KEY = "menu"
MAX_HISTORY = 10
MAX_FREE_TEXT = 2000
"""Longest free-text answer kept in the state (longer answers are cut)."""

MAIN_MENU = "nav:menu"


class StaleCallback(Exception):  # noqa: N818 - a signal, not an error the caller sees
    """The pressed button refers to something that no longer exists or no longer applies."""


@dataclass(slots=True)
class Turn:
    """One routing call: the funnel, the message, a private copy of the state, what happened."""

    funnel: Funnel
    state: ConversationState
    customer_ref: str | None = None
    events: list[RouteEvent] = field(default_factory=list)
    handler: str = ""
    view: str | None = None
    reset_history: bool = False
    going_back: bool = False

    def event(self, type_: str, **data: Any) -> None:
        """Record an event for the bot's ``events`` table."""
        self.events.append(RouteEvent(type=type_, data=data))

    def push_view(self, callback: str) -> None:
        """Say that the screen being sent can be shown again by ``callback`` (for ``nav:back``).

        Screens that cannot be re-shown that way (a verdict, a step prompt) do not call this.
        """
        self.view = callback


def to_buttons(specs: list[ButtonSpec]) -> list[Button]:
    """Turn the funnel's button specs into reply buttons."""
    return [Button(id=spec.action, title=spec.title) for spec in specs]


def text_with_buttons(text: str, buttons: list[Button]) -> Reply:
    """Buttons when there are any, plain text otherwise."""
    return ButtonsReply(text=text, buttons=buttons) if buttons else TextReply(text=text)


def main_menu_buttons(funnel: Funnel) -> list[Button]:
    """The main-menu (welcome) buttons."""
    return to_buttons(funnel.welcome)


def main_menu_button(funnel: Funnel) -> Button:
    """A single "Main menu" button."""
    return Button(id=MAIN_MENU, title=funnel.texts.main_menu)


def main_menu_reply(turn: Turn, text: str | None = None) -> Reply:
    """The main menu with ``text`` (the funnel's menu text by default) above it."""
    turn.view = MAIN_MENU
    turn.reset_history = True
    return ButtonsReply(
        text=text or turn.funnel.texts.menu, buttons=main_menu_buttons(turn.funnel)
    )


def welcome_reply(turn: Turn) -> Reply:
    """The welcome message, addressed by name when the customer's name is known."""
    texts = turn.funnel.texts
    name = (turn.state.profile_name or "").strip() or texts.anonymous_name
    return main_menu_reply(turn, render(texts.welcome, {"name": name}))


def list_reply(
    turn: Turn, text: str, section_title: str, rows: list[ListRow], nav: list[ListRow]
) -> ListReply:
    """A list message: the rows, then (when given) a navigation section."""
    sections = [ListSection(title=section_title, rows=rows)]
    if nav:
        sections.append(ListSection(title=turn.funnel.texts.navigation, rows=nav))
    return ListReply(text=text, button=turn.funnel.texts.list_button, sections=sections)


def plain(text: str) -> str:
    """Drop ``*bold*`` markers, for places that show no formatting (list section titles)."""
    return text.replace("*", "").strip()


def reply_options(reply: Reply) -> list[tuple[str, str]]:
    """The options a reply offers, as ``(callback id, title)`` in display order.

    This is the numbering customers use when they answer with a digit (SMS renders options as
    ``1. ...``, ``2. ...``): buttons in order, list rows in order across sections.
    """
    if isinstance(reply, ButtonsReply):
        return [(b.id, b.title) for b in reply.buttons]
    if isinstance(reply, ListReply):
        return [(r.id, r.title) for s in reply.sections for r in s.rows]
    return []
