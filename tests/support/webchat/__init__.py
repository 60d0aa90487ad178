"""A fourth channel defined only under ``tests/``: "webchat", a tiny signed-JSON chat widget.

Naming this package in ``FLOTILLA_CHANNEL_PLUGINS`` (``tests.support.webchat``) registers its
manifest (:mod:`tests.support.webchat.manifest`) with the channel registry; the orchestrator
then serves ``/admin/webchat/instances``, forwards ``/hooks/webchat/{id}/webhook`` and runs the
bot as ``python -m tests.support.webchat``. Nothing outside ``tests/`` names it.

The protocol (made up for the test, shaped like a real provider's):

* inbound: ``POST /webhook`` with ``{"id", "visitor", "name", "text", "payload"}``, signed with
  ``X-Webchat-Signature: sha256=<hex HMAC-SHA256 of the body with webchat_secret>``;
* outbound: ``POST {webchat_outbound_url}/messages`` with ``{"to", "text", "tag"}``, signed the
  same way; the widget answers ``{"id": <message id>}``.
"""

from tests.support.webchat.manifest import MANIFEST

__all__ = ["MANIFEST"]
