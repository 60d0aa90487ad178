"""Does a customer ask for a person? Similarity with the knowledge bases' embedding model.

The bots match requests for a person offline with a phrase list (``shared.botkit.handoff``);
a message they did not recognise and sent on to the LLM path is compared here, by cosine
similarity, with example requests ("can I speak to someone", "get me a real human"...). This
runs only when the embedding model is already in memory (the knowledge bases loaded it): the
check never makes a reply wait for a model load, and a bot works without it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: Example requests for a person (the model the knowledge bases use is English; Russian
#: requests are the bots' offline phrase list's job).
PERSON_REQUESTS = (
    "I want to talk to a person",
    "can I speak to a human",
    "connect me with a real person please",
    "I would like to talk to someone from your team",
    "let me talk to an agent",
    "can a human help me",
    "put me through to customer service",
    "I need to speak with a manager",
    "is there a real person I can chat with",
    "transfer me to a live agent",
    "get me someone who can actually help",
    "stop the bot, I want a human",
    "can I talk to one of your staff",
    "is anybody real there",
)
#: Cosine similarity from which a message counts as a request for a person.
PERSON_THRESHOLD = 0.62
#: Longer messages are questions, not requests to be put through.
MAX_WORDS = 20


class PersonRequestDetector:
    """Scores messages against :data:`PERSON_REQUESTS` with an :class:`Embedder`-like object
    (``loaded``, ``encode(list[str]) -> unit vectors``).

    Args:
        embedder: the knowledge bases' embedder.
        threshold: the similarity from which :meth:`matches` is true.
    """

    def __init__(self, embedder: Any, *, threshold: float = PERSON_THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self._examples: np.ndarray[Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the model is in memory (the check then costs one small encode)."""
        return bool(getattr(self.embedder, "loaded", False))

    def score(self, text: str) -> float:
        """The best similarity of ``text`` to an example request (0.0 when unavailable, for
        an empty or a long message). Blocking: call from a worker thread."""
        words = text.split()
        if not self.available or not words or len(words) > MAX_WORDS:
            return 0.0
        with self._lock:
            if self._examples is None:
                self._examples = self.embedder.encode(list(PERSON_REQUESTS))
        vector = self.embedder.encode([text])
        return float(np.max(self._examples @ vector[0]))

    def matches(self, text: str) -> bool:
        """Whether ``text`` asks for a person."""
        return self.score(text) >= self.threshold
