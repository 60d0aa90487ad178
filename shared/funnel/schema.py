"""The funnel JSON document, as pydantic models.

A funnel is configuration stored with a bot instance (``config["funnel"]``) and edited through the
admin API. These models check its shape (types, required texts, identifier syntax); cross-node
checks (dangling references, callback-id lengths) live in :mod:`shared.funnel.validation`.

Texts use ``*bold*`` and may hold ``{placeholders}`` that handlers fill in; links go in the text.
Every ``action`` of a button is a callback id in ``prefix:action[:arg]`` form (see
:mod:`shared.funnel.callbacks`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Ident = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]*$", min_length=1, max_length=40)
]
"""An identifier used inside callback ids: lower-case letters, digits and ``_``."""

Text = Annotated[str, StringConstraints(min_length=1)]
"""A non-empty text shown to the customer."""

Word = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ButtonSpec(_Node):
    """A button (or list row) the funnel author places on a screen."""

    title: Text
    action: Text = Field(description="callback id, e.g. 'sales:quiz', 'faq:price', 'nav:menu'")


class Screen(_Node):
    """A message: text plus optional buttons."""

    text: Text
    buttons: list[ButtonSpec] = Field(default_factory=list)


class Greetings(_Node):
    """Trigger words that open the welcome screen (case and punctuation are ignored)."""

    words: list[Word] = Field(min_length=1)
    max_extra_words: int = Field(
        default=2, ge=0, le=10, description="'hi there' still greets; longer texts do not"
    )


class Texts(_Node):
    """Texts the engine itself needs. ``{name}`` in ``welcome`` is the customer's name."""

    welcome: Text
    menu: Text = Field(description="shown above the main-menu buttons when navigating back")
    stale: Text = Field(description="an old or unknown button was pressed")
    text_expected: Text = Field(description="a free-text step got no text (e.g. a photo)")
    anonymous_name: Text = Field(description="{name} when the customer's name is unknown")
    list_button: Text = Field(description="label of the button that opens a list")
    back: Text
    main_menu: Text
    cancel: Text
    skip: Text
    navigation: Text = Field(description="title of the list section holding back/menu rows")


class QuizOption(_Node):
    """One answer; ``weights`` add to segment scores (segment id -> points)."""

    id: Ident
    title: Text
    description: str = ""
    weights: dict[str, float] = Field(default_factory=dict)


class QuizQuestion(_Node):
    """A quiz question, sent as a list message."""

    id: Ident
    text: Text
    options: list[QuizOption] = Field(min_length=1)


class Quiz(_Node):
    """The segmentation quiz. ``header`` takes ``{n}`` and ``{total}``."""

    intro: Text
    header: Text = "*Question {n} of {total}*"
    questions: list[QuizQuestion] = Field(min_length=1)


class Segmentation(_Node):
    """How quiz scores become a segment.

    The segment with the highest score wins; ties go to the earliest in ``tie_break`` (then the
    order of ``segments``); a best score below ``min_score`` gives ``default``.
    """

    default: Ident
    tie_break: list[Ident] = Field(default_factory=list)
    min_score: float = 0.0
    result: Text = Field(description="prefix of the segment screen; takes {segment}")


class Segment(_Node):
    """A customer segment and the screen that starts its path."""

    title: Text
    screen: Ident


class GpuModel(_Node):
    """A GPU the audit offers as a list row; ``aliases`` help recognise typed names."""

    id: Ident
    title: Text
    vram_gb: float = Field(ge=0)
    aliases: list[Word] = Field(default_factory=list)


class GpuTier(_Node):
    """What runs with at least ``min_vram_gb`` of video memory."""

    min_vram_gb: float = Field(ge=0)
    text: Text


class GpuAudit(_Node):
    """The DIY GPU audit. ``verdict`` takes ``{gpu}``, ``{vram}`` and ``{tier}``."""

    prompt: Text
    other_title: Text = Field(description="list row for a GPU that is not listed")
    custom_prompt: Text = Field(description="asks for the GPU as free text (diy_gpu_custom)")
    unknown: Text = Field(description="the typed GPU was not recognised")
    verdict: Text
    gpus: list[GpuModel] = Field(min_length=1)
    tiers: list[GpuTier] = Field(min_length=1)
    buttons: list[ButtonSpec] = Field(default_factory=list)


class DiscoveryStep(_Node):
    """A free-text question of the custom discovery; ``id`` is the ``funnel_state`` value."""

    id: Ident
    text: Text


class Discovery(_Node):
    """The custom discovery. ``header`` takes ``{n}`` and ``{total}``."""

    intro: Text
    header: Text = "*Step {n} of {total}*"
    steps: list[DiscoveryStep] = Field(min_length=1)
    done: Text


class QuoteComponent(_Node):
    """One priced line of a quote, read from one discovery answer.

    Kinds:
        ``number``: the first number in the answer; ``(n - included) * unit_price``, with ``n``
            capped at ``max_units``.
        ``items``: the answer is a list (commas, new lines, "and"); ``count * unit_price``, zero
            when the answer is one of ``none_words``.
        ``keywords``: ``amount`` when the answer contains any of ``keywords``.
    """

    step: Ident
    label: Text
    kind: Literal["number", "items", "keywords"]
    unit_price: float = Field(default=0, ge=0)
    included: float = Field(default=0, ge=0)
    max_units: float | None = Field(default=None, gt=0)
    amount: float = Field(default=0, ge=0)
    keywords: list[Word] = Field(default_factory=list)
    none_words: list[Word] = Field(default_factory=list)


class QuoteMultiplier(_Node):
    """Multiplies the subtotal when a discovery answer contains any of ``keywords``."""

    step: Ident
    label: Text
    keywords: list[Word] = Field(min_length=1)
    factor: float = Field(gt=0)


class QuotePricing(_Node):
    """Prices for :func:`shared.funnel.calculate_quote`.

    ``template`` takes ``{lines}``, ``{total}``, ``{low}``, ``{high}``, ``{deposit}``; each line
    is rendered with ``line`` (``{label}``, ``{amount}``).
    """

    base: float = Field(ge=0)
    base_label: Text
    components: list[QuoteComponent] = Field(default_factory=list)
    multipliers: list[QuoteMultiplier] = Field(default_factory=list)
    negations: list[Word] = Field(
        default_factory=list,
        description="a keyword right after one of these does not count ('not urgent')",
    )
    round_to: int = Field(default=1000, ge=1)
    range_low: float = Field(default=1.0, gt=0)
    range_high: float = Field(default=1.0, gt=0)
    deposit_percent: float = Field(default=30, ge=0, le=100)
    line: Text = "• {label}: {amount}"
    template: Text
    alternatives: Screen


class Product(_Node):
    """Something the customer can pay for; ``price`` null means "the deposit of their quote"."""

    title: Text
    price: float | None = Field(default=None, ge=0)


class Payment(_Node):
    """A payment link in text (WhatsApp has no payment buttons).

    ``url_template`` takes ``{receiver}``, ``{amount}``, ``{label}``, ``{target}`` (URL-encoded);
    ``order_text`` takes ``{product}``, ``{amount}``, ``{url}``.
    """

    url_template: Text
    receiver: Text
    order_text: Text
    no_quote: Text = Field(description="a quote-priced product was ordered before any quote")
    buttons: list[ButtonSpec] = Field(default_factory=list)


class FaqItem(_Node):
    """One FAQ entry; ``keywords`` are word stems matched in free text."""

    key: Ident
    title: Text = Field(description="short list-row title")
    question: Text
    answer: Text
    keywords: list[Word] = Field(default_factory=list)
    buttons: list[ButtonSpec] = Field(default_factory=list)


class FaqSection(_Node):
    """A group of FAQ entries (``faq:cat_{id}``)."""

    id: Ident
    title: Text
    description: str = ""
    items: list[FaqItem] = Field(min_length=1)


class Faq(_Node):
    """FAQ sections. ``section_text`` takes ``{section}``."""

    menu_text: Text
    section_text: Text
    min_keyword_hits: int = Field(default=1, ge=1)
    sections: list[FaqSection] = Field(min_length=1)


class TzOption(_Node):
    """A choice of a spec step."""

    id: Ident
    title: Text


class TzStep(_Node):
    """A spec step: ``choice`` (one option), ``multi`` (options one by one, then Done), ``text``.

    A ``text`` step is a free-text ``funnel_state`` named ``tz_{id}``.
    """

    id: Ident
    label: Text
    text: Text
    kind: Literal["choice", "multi", "text"]
    options: list[TzOption] = Field(default_factory=list)
    optional: bool = False


class Tz(_Node):
    """The spec (TZ) generator.

    ``selected`` takes ``{selected}``; ``done_template`` takes ``{<step id>}`` for every step
    (option titles or the typed text; ``empty`` when skipped).
    """

    intro: Text
    header: Text = "*Step {n} of {total}*"
    selected: Text
    more: Text = Field(description="button: pick one more option of a multi step")
    done: Text = Field(description="button: finish a multi step")
    empty: Text
    steps: list[TzStep] = Field(min_length=1)
    done_template: Text
    done_buttons: list[ButtonSpec] = Field(default_factory=list)


class Funnel(_Node):
    """A complete funnel: what a bot says and how it moves a customer along.

    Load one with :func:`shared.funnel.load_funnel`, which also runs the cross-node checks.
    """

    version: Literal[1] = 1
    name: Text = "default"
    currency: Text = "₽"
    thousands_separator: str = " "
    greetings: Greetings
    cancel_words: list[Word] = Field(
        default_factory=list, description="typed during a free-text step, they leave it"
    )
    texts: Texts
    welcome: list[ButtonSpec] = Field(min_length=1, description="main-menu buttons")
    screens: dict[Ident, Screen] = Field(default_factory=dict)
    quiz: Quiz
    segmentation: Segmentation
    segments: dict[Ident, Segment] = Field(min_length=1)
    gpu_audit: GpuAudit | None = None
    discovery: Discovery | None = None
    quote: QuotePricing | None = None
    products: dict[Ident, Product] = Field(default_factory=dict)
    payment: Payment | None = None
    manager: Screen | None = None
    faq: Faq | None = None
    tz: Tz | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the funnel as a JSON-serialisable dict (what the admin API stores)."""
        return self.model_dump(mode="json")

    def faq_item(self, key: str) -> tuple[FaqSection, FaqItem] | None:
        """Find an FAQ entry and its section by key."""
        if self.faq is None:
            return None
        for section in self.faq.sections:
            for item in section.items:
                if item.key == key:
                    return section, item
        return None

    def faq_section(self, section_id: str) -> FaqSection | None:
        """Find an FAQ section by id."""
        if self.faq is None:
            return None
        return next((s for s in self.faq.sections if s.id == section_id), None)

    def question(self, question_id: str) -> QuizQuestion | None:
        """Find a quiz question by id."""
        return next((q for q in self.quiz.questions if q.id == question_id), None)

    def discovery_step(self, step_id: str) -> DiscoveryStep | None:
        """Find a discovery step by id (its ``funnel_state`` value)."""
        if self.discovery is None:
            return None
        return next((s for s in self.discovery.steps if s.id == step_id), None)

    def tz_step(self, step_id: str) -> TzStep | None:
        """Find a spec step by id."""
        if self.tz is None:
            return None
        return next((s for s in self.tz.steps if s.id == step_id), None)
