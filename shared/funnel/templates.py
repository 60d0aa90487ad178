"""Funnel templates: data files with ``{placeholders}`` that a business fills in.

A template lives in ``shared/funnel/templates/<id>.json``::

    {"id": "documents", "order": 1,
     "title": {"en": "...", "ru": "..."}, "description": {"en": "...", "ru": "..."},
     "placeholders": ["business_name", "about", ...],
     "funnels": {"en": {<funnel>}, "ru": {<funnel>}}}

A funnel may also be the name of a funnel file in ``shared/funnel`` (``"default_funnel.json"``:
the ``sales`` template is exactly the seed-004 funnel). :func:`render_template` fills the
placeholders of the chosen language's funnel from a :class:`BusinessProfile` and returns a dict
that :func:`shared.funnel.load_funnel` accepts.

The values come from users, so they are checked (:class:`BusinessProfile`: lengths, a real time
zone, en/ru) and made inert: braces and control characters are dropped (a value cannot add a
placeholder such as the customer's ``{name}``), and they are put in with plain
:meth:`str.replace` of the known placeholders into the already parsed JSON strings, never with
``str.format`` and never into JSON text. A line whose placeholder has no value (no hours given)
is left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.funnel.validation import load_funnel

LANGUAGES = ("en", "ru")
DEFAULT_TEMPLATE = "documents"
"""What a bot created without a funnel gets, filled with its name."""
SALES_TEMPLATE = "sales"

#: The placeholders a template may use, with the longest value each takes.
MAX_LENGTHS: dict[str, int] = {
    "business_name": 80,
    "about": 400,
    "hours": 200,  # plus " (<time zone> time)"
    "timezone": 64,
    "currency": 12,
    "contact": 200,
}
#: Used when the business gives no currency (never the seed's "₽").
DEFAULT_CURRENCY = {"en": "USD", "ru": "руб."}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_TEMPLATE_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(ValueError):
    """A template is unknown or does not render to a valid funnel."""


def clean_value(value: str, limit: int, *, multiline: bool = False) -> str:
    """A user's value made inert for a template: no braces or control characters, spaces
    squeezed (new lines kept only for ``multiline``), at most ``limit`` characters."""
    value = _CONTROL.sub(" ", value.replace("\r\n", "\n").replace("\t", " "))
    value = value.replace("{", "").replace("}", "")
    if multiline:
        lines = [" ".join(line.split()) for line in value.split("\n")]
        value = "\n".join(line for line in lines if line)
    else:
        value = " ".join(value.split())
    return value[:limit].strip()


def check_timezone(value: str) -> str:
    """``value`` if it names an IANA time zone (``Europe/Berlin``), else ``ValueError``."""
    if not value:
        return value
    if value not in _timezones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value[:64]!r} is not a time zone: use a name like Europe/Berlin or "
                "America/New_York"
            ) from None
    return value


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_names() -> list[str]:
    """Every IANA time zone name known here, sorted (for a picker)."""
    return sorted(_timezones())


class BusinessProfile(BaseModel):
    """What a business tells about itself; the values templates are filled with.

    Stored on the bot (``config["business"]``) so the admin UI can show and edit it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=MAX_LENGTHS["business_name"])
    about: str = Field(default="", max_length=MAX_LENGTHS["about"])
    hours: str = Field(default="", max_length=MAX_LENGTHS["hours"])
    timezone: str = Field(default="", max_length=MAX_LENGTHS["timezone"])
    language: Literal["en", "ru"] = "en"
    currency: str = Field(default="", max_length=MAX_LENGTHS["currency"])
    contact: str = Field(default="", max_length=MAX_LENGTHS["contact"])

    @field_validator("name", "about", "hours", "currency", "contact")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_value(value, 10_000, multiline=False)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value.strip())

    def values(self, fallback_name: str = "") -> dict[str, str]:
        """The placeholder values (``business_name`` falls back to ``fallback_name``)."""
        hours = self.hours
        if hours and self.timezone:
            zone = f"{self.timezone} time" if self.language == "en" else f"время {self.timezone}"
            hours = f"{hours} ({zone})"
        raw = {
            "business_name": self.name or fallback_name,
            "about": self.about,
            "hours": hours,
            "timezone": self.timezone,
            "currency": self.currency or DEFAULT_CURRENCY[self.language],
            "contact": self.contact,
        }
        limits = {**MAX_LENGTHS, "hours": MAX_LENGTHS["hours"] + MAX_LENGTHS["timezone"] + 10}
        return {k: clean_value(v, limits[k]) for k, v in raw.items()}


@dataclass(frozen=True)
class TemplateInfo:
    """A template as the API lists it."""

    id: str
    title: str
    description: str
    placeholders: list[str]
    languages: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "placeholders": list(self.placeholders),
            "languages": list(self.languages),
        }


@lru_cache(maxsize=1)
def _load_all() -> dict[str, dict[str, Any]]:
    folder = resources.files("shared.funnel").joinpath("templates")
    docs: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        doc = json.loads(entry.read_text("utf-8"))
        docs[doc["id"]] = doc
    return dict(sorted(docs.items(), key=lambda item: (item[1].get("order", 99), item[0])))


def _pick(texts: Mapping[str, str], language: str) -> str:
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")


def list_templates(language: str = "en") -> list[TemplateInfo]:
    """Every template, in display order, with titles in ``language`` (English otherwise)."""
    return [
        TemplateInfo(
            id=doc["id"],
            title=_pick(doc["title"], language),
            description=_pick(doc["description"], language),
            placeholders=list(doc.get("placeholders", [])),
            languages=[lang for lang in LANGUAGES if lang in doc["funnels"]],
        )
        for doc in _load_all().values()
    ]


def get_template(template_id: str) -> dict[str, Any]:
    """The template document, or :class:`TemplateError` (unknown id)."""
    doc = _load_all().get(template_id) if _TEMPLATE_ID.match(template_id or "") else None
    if doc is None:
        known = ", ".join(_load_all())
        raise TemplateError(f"unknown template {template_id[:40]!r}; templates: {known}")
    return doc


def _fill(text: str, values: Mapping[str, str]) -> str:
    lines = []
    for line in text.split("\n"):
        used = [key for key in values if "{" + key + "}" in line]
        if any(not values[key] for key in used):
            continue  # "Opening hours: {hours}" when no hours were given
        for key in used:
            line = line.replace("{" + key + "}", values[key])
        lines.append(line)
    return "\n".join(lines)


def _walk(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _fill(node, values)
    if isinstance(node, list):
        return [_walk(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _walk(item, values) for key, item in node.items()}
    return node


FAQ_BUTTON = {"en": "FAQ", "ru": "Частые вопросы"}


def _with_faq(funnel: dict[str, Any], faq: Mapping[str, Any], language: str) -> dict[str, Any]:
    """``funnel`` with the bot's own FAQ and an FAQ button before "talk to a person"."""
    out = {**funnel, "faq": dict(faq)}
    welcome = [b for b in funnel["welcome"] if b.get("action") != "faq:menu"]
    at = next(
        (i for i, b in enumerate(welcome) if b.get("action") == "sales:manager"), len(welcome)
    )
    welcome.insert(at, {"title": FAQ_BUTTON.get(language, "FAQ"), "action": "faq:menu"})
    out["welcome"] = welcome
    return out


def render_template(
    template_id: str,
    business: BusinessProfile | Mapping[str, Any] | None = None,
    *,
    faq: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The funnel of ``template_id`` in the business's language, filled with its values.

    Args:
        template_id: ``documents``, ``leads``, ``sales`` (see :func:`list_templates`).
        business: the values (a :class:`BusinessProfile` or a dict of its fields; validated).
        faq: the bot's own FAQ (a funnel's ``faq`` node), kept when a template without one is
            applied again: the menu then offers it. An FAQ that does not fit is left out.

    Returns:
        A funnel dict that passes :func:`shared.funnel.load_funnel`.

    Raises:
        TemplateError: unknown template, or the filled funnel is not valid.
        pydantic.ValidationError: a bad value (too long, unknown time zone or language).
    """
    doc = get_template(template_id)
    profile = (
        business
        if isinstance(business, BusinessProfile)
        else BusinessProfile.model_validate(dict(business or {}))
    )
    funnels = doc["funnels"]
    funnel = funnels.get(profile.language) or funnels["en"]
    if isinstance(funnel, str):  # a shipped funnel file, used as it is
        text = resources.files("shared.funnel").joinpath(funnel).read_text("utf-8")
        return load_funnel(json.loads(text)).to_dict()
    values = profile.values()
    if not values["business_name"]:
        values["business_name"] = "our team" if profile.language == "en" else "нашей команды"
    filled = _walk(funnel, values)
    if faq and filled.get("faq") is None:
        with_faq = _with_faq(filled, faq, profile.language)
        try:
            return load_funnel(with_faq).to_dict()
        except ValueError:
            pass  # e.g. its buttons point at screens this template has not: without it
    try:
        return load_funnel(filled).to_dict()
    except ValueError as exc:
        raise TemplateError(f"template {template_id!r} did not render: {exc}") from exc


#: A menu of topics built from the bot's documents (:func:`with_topics`).
TOPICS_TEXTS = {
    "en": {
        "button": "Topics",
        "section": "Topics",
        "menu_text": "*What would you like to know about?*",
        "section_text": "*{section}*\nPick a topic:",
    },
    "ru": {
        "button": "Темы",
        "section": "Темы",
        "menu_text": "*О чём рассказать?*",
        "section_text": "*{section}*\nВыберите тему:",
    },
}
TOPICS_SECTION = "topics"
MAX_TOPIC_TITLE = 60
MAX_TOPIC_ANSWER = 700
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def _topic_answer(text: str) -> str:
    """The section's text cut at a sentence end within :data:`MAX_TOPIC_ANSWER` characters."""
    text = clean_value(text, 100_000)
    if len(text) <= MAX_TOPIC_ANSWER:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if len(out) + len(sentence) + 1 > MAX_TOPIC_ANSWER:
            break
        out = f"{out} {sentence}".strip()
    return out or text[: MAX_TOPIC_ANSWER - 1].rstrip() + "…"


def with_topics(
    funnel: Mapping[str, Any], topics: list[Mapping[str, Any]], language: str = "en"
) -> dict[str, Any]:
    """``funnel`` with a menu of topics built from the bot's documents.

    ``topics`` are ``{"title": heading, "text": section text}`` in document order (what
    ``GET /admin/knowledge/{id}/topics`` gives). They become one FAQ section (id ``topics``,
    replacing an earlier one; the bot's own FAQ sections stay) whose items answer with the
    section's text. Items carry no keywords, so they answer only when chosen from the menu:
    free-text questions still go to the knowledge base. A "Topics" button is put before "talk
    to a person" when the menu has no FAQ button yet. Without usable topics the funnel is
    returned unchanged.

    Raises:
        TemplateError: the result is not a valid funnel.
    """
    texts = TOPICS_TEXTS.get(language) or TOPICS_TEXTS["en"]
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for topic in topics:
        title = clean_value(str(topic.get("title") or ""), MAX_TOPIC_TITLE)
        answer = _topic_answer(str(topic.get("text") or ""))
        if not title or not answer or title.casefold() in seen:
            continue
        seen.add(title.casefold())
        items.append(
            {
                "key": f"topic_{len(items) + 1}",
                "title": title,
                "question": title,
                "answer": answer,
                "keywords": [],
            }
        )
    out = json.loads(json.dumps(dict(funnel)))  # a deep copy of plain JSON
    if not items:
        return out
    section = {"id": TOPICS_SECTION, "title": texts["section"], "items": items[:8]}
    faq = out.get("faq")
    if isinstance(faq, dict) and faq.get("sections"):
        others = [s for s in faq["sections"] if s.get("id") != TOPICS_SECTION]
        out["faq"] = {**faq, "sections": [section, *others]}
    else:
        out["faq"] = {
            "menu_text": texts["menu_text"],
            "section_text": texts["section_text"],
            "sections": [section],
        }
    welcome = list(out.get("welcome") or [])
    if not any(b.get("action") == "faq:menu" for b in welcome):
        at = next(
            (i for i, b in enumerate(welcome) if b.get("action") == "sales:manager"),
            len(welcome),
        )
        welcome.insert(at, {"title": texts["button"], "action": "faq:menu"})
        out["welcome"] = welcome
    try:
        return load_funnel(out).to_dict()
    except ValueError as exc:
        raise TemplateError(f"the topics do not fit this funnel: {exc}") from exc
