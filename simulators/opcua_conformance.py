"""Two Subscription services of asyncua's server (2.1) made to behave as OPC UA Part 4 says, in this process.

* **TransferSubscriptions** (5.13.7) moves a subscription to the calling session. asyncua
  rebinds where the subscription sends its responses but not where it takes its
  PublishRequests from: those still come from the old session's connection, which is gone
  after a client restart, so a transferred subscription falls silent and expires. Here it takes
  them from the new session's connection, and answers its next PublishRequest.
* **Republish** (5.13.6) sends a NotificationMessage again; it stays in the retransmission
  queue until the client acknowledges it. asyncua removes it on Republish, so a client that
  dies before storing the republished message can never ask for it again.

Installed by the simulator (``plantmrv simulate``) and the tests' OPC UA server, so that they
serve a gateway's subscription transfer after a restart as a conforming server would; the
patches themselves are in :mod:`plantmrv.gateway.asyncua_compat`, with every other use of
asyncua's internals. The gateway itself notices a server whose transferred subscriptions stay
silent and falls back to new subscriptions (:mod:`plantmrv.gateway.opcua_durable`).
"""

from __future__ import annotations

_installed = False


def install() -> None:
    """Patch asyncua's server classes in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from plantmrv.gateway.asyncua_compat import keep_republished_until_acknowledged, serve_transferred_subscriptions_from_new_session

    serve_transferred_subscriptions_from_new_session()
    keep_republished_until_acknowledged()
    _installed = True
