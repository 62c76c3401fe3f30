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
serve a gateway's subscription transfer after a restart as a conforming server would. The
gateway itself notices a server whose transferred subscriptions stay silent and falls back to
new subscriptions (:mod:`plantmrv.gateway.opcua_durable`).
"""

from __future__ import annotations

_installed = False


def install() -> None:
    """Patch asyncua's server classes in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from asyncua import ua
    from asyncua.server.internal_subscription import InternalSubscription
    from asyncua.server.subscription_service import SubscriptionService

    transfer = SubscriptionService.transfer_subscriptions

    async def transfer_subscriptions(self, params, session_id, callback):
        results = await transfer(self, params, session_id, callback)
        processor = getattr(callback, "__self__", None)  # the new session's connection (its forward_publish_response)
        if processor is None:
            return results
        for sub_id, res in zip(params.SubscriptionIds, results):
            sub = self.subscriptions.get(int(sub_id))
            if sub is None or not res.StatusCode.is_good():
                continue
            old = getattr(sub.pub_request_callback, "__self__", None)
            if old is not None and old is not processor:
                old._publish_results_subs.pop(sub.data.SubscriptionId, None)
            sub.pub_request_callback = processor.get_publish_request
            processor._publish_results_subs[sub.data.SubscriptionId] = True  # served by the next PublishRequest
        return results

    def republish(self, nb: int) -> ua.NotificationMessage:
        result = self._not_acknowledged_results.get(nb)
        return result.NotificationMessage if result else ua.NotificationMessage()

    SubscriptionService.transfer_subscriptions = transfer_subscriptions
    InternalSubscription.republish = republish
    _installed = True
