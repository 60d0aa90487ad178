"""Channel-neutral routing: ``route(message, state, funnel) -> RouteResult`` (pure, no I/O).

See :mod:`shared.routing.router` for the routing order and :mod:`shared.funnel.callbacks` for
the callback vocabulary.
"""

from shared.routing.context import reply_options
from shared.routing.router import chosen_option, is_greeting, route
from shared.routing.types import ConversationState, RouteEvent, RouteResult

__all__ = [
    "ConversationState",
    "RouteEvent",
    "RouteResult",
    "chosen_option",
    "is_greeting",
    "reply_options",
    "route",
]
