"""Every use of asyncua's private or internal API, in one place.

plantmrv needs a few things asyncua offers no public API for. Each is one small function here;
no other module touches an asyncua name that starts with ``_``, replaces an asyncua method or
walks asyncua's binary codec. ``tests/test_asyncua_compat.py`` checks that, and that every name
in :data:`RELIED_ON` still exists in the installed asyncua with the parameters called here: a
new asyncua that changes one fails that test, naming the API and the asyncua version.

Tested against asyncua 2.1.0, the range pyproject.toml pins (``asyncua>=2.1,<2.2``). asyncua
1.x has no ``UaSession`` (its ``UaClient`` carried the session services), so nothing below
works there as written.

Client side (the gateway: :mod:`~plantmrv.gateway.opcua_source`, :mod:`~plantmrv.gateway.opcua_fast`,
:mod:`~plantmrv.gateway.opcua_durable`)

- ``UaClient.session`` (the ``UaSession`` behind ``Client.uaclient``), :func:`session_of`: the
  session's own services (``publish``, ``republish``, ``transfer_subscriptions``,
  ``create_subscription``, ``create_monitored_items``, ``delete_subscriptions``); ``Client``
  has no Republish and no TransferSubscriptions, and its ``Subscription`` keeps a ``Node`` per
  monitored item.
- ``UaSession._send_request`` and ``UaSession.publish``, replaced on one session, plus
  ``UaSession.logger``, :func:`decode_publish_responses`: the raw PublishResponse goes to
  opcua_fast's decoder (DataChangeNotifications as numpy columns) instead of asyncua's generic
  ``struct_from_binary``; same request, same error mapping as ``UaSession.publish``.
- ``UaSession.ensure_publish_loop``, replaced on one session by a no-op,
  :func:`disable_builtin_publish_loop`: asyncua's ``UaSession._publish_loop`` acknowledges a
  NotificationMessage as soon as its callback returned; opcua_durable's loops acknowledge only
  what is fsync'ed.
- ``UaClient.close_session``, replaced on one client, :func:`keep_subscriptions_on_close`:
  ``Client.disconnect`` closes the session with DeleteSubscriptions true; the gateway keeps its
  subscriptions for the next session (or process) to take over.
- ``asyncua.client.client._first_cert_from_chain``, :func:`first_cert_from_chain`: the server
  certificate alone out of an endpoint's certificate chain, as asyncua itself trusts it, to
  fingerprint and pin it.
- ``asyncua.ua.ua_binary`` (``Primitives``, ``nodeid_from_binary``, ``struct_from_binary``,
  ``from_binary``, ``extensionobject_from_binary``) and ``asyncua.common.utils.Buffer``
  (``copy``, ``skip``, ``read``, ``cur_pos``), :func:`binary_codec`: opcua_fast walks a
  PublishResponse by hand and leaves the rest to asyncua's decoder.

Server side (the simulator :mod:`plantmrv.simulators.server`, its
:mod:`~plantmrv.simulators.opcua_conformance` patches, and the tests' OPC UA server)

- ``InternalSubscription._pop_publish_result``, wrapped, and ``InternalSubscription.monitored_item_srv``,
  :func:`on_publish_result`: the simulator stamps its plant clock as every PublishResponse's
  PublishTime (asyncua stamps the wall clock).
- ``SubscriptionService.transfer_subscriptions``, wrapped, with ``InternalSubscription.pub_request_callback``,
  ``UaProcessor.get_publish_request`` and ``UaProcessor._publish_results_subs``,
  :func:`serve_transferred_subscriptions_from_new_session`: a transferred subscription takes
  its PublishRequests from the new session's connection (OPC UA Part 4, 5.13.7).
- ``InternalSubscription.republish``, replaced, and ``InternalSubscription._not_acknowledged_results``,
  :func:`keep_republished_until_acknowledged`: a republished message stays in the
  retransmission queue until acknowledged (Part 4, 5.13.6).
- ``MonitoredItemService._create_data_change_monitored_item``, wrapped,
  :func:`check_new_data_change_items`: refuse a monitored item (the tests' spec deadbands).
- ``MonitoredItemService.datachange_callback``, replaced, with ``MonitoredItemService._monitored_datachange``,
  ``._monitored_items``, ``.isub.enqueue_datachange_event`` and ``MonitoredItemData``'s fields,
  :func:`decide_data_change_reports`: which data changes a monitored item reports.

Public attributes without an underscore (``Server.iserver`` with its ``aspace``, ``isession``
and ``history_manager``; ``UaClient.read`` and ``history_read``) are used where they are needed.
asyncua is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, Callable

# Every asyncua name the functions below rely on, ``module:Qualified.name``, with the parameters
# they call it with (None: an attribute; defaults shown as ``=...``, ``None`` and numbers as
# themselves). tests/test_asyncua_compat.py compares each with the installed asyncua.
RELIED_ON: dict[str, str | None] = {
    "asyncua.client.ua_client:UaClient.session": None,
    "asyncua.client.ua_client:UaClient.close_session": "(self, delete_subscriptions)",
    "asyncua.client.ua_session:UaSession._send_request": "(self, request, timeout=None, message_type=...)",
    "asyncua.client.ua_session:UaSession.publish": "(self, acks)",
    "asyncua.client.ua_session:UaSession.logger": None,
    "asyncua.client.ua_session:UaSession.ensure_publish_loop": "(self)",
    "asyncua.client.ua_session:UaSession._publish_loop": "(self)",
    "asyncua.client.ua_session:UaSession.create_subscription": "(self, params, callback)",
    "asyncua.client.ua_session:UaSession.create_monitored_items": "(self, params)",
    "asyncua.client.ua_session:UaSession.delete_subscriptions": "(self, subscription_ids)",
    "asyncua.client.ua_session:UaSession.transfer_subscriptions": "(self, params)",
    "asyncua.client.ua_session:UaSession.republish": "(self, subscription_id, retransmit_sequence_number)",
    "asyncua.client.client:_first_cert_from_chain": "(der)",
    "asyncua.ua.ua_binary:Primitives": None,
    "asyncua.ua.ua_binary:nodeid_from_binary": "(data)",
    "asyncua.ua.ua_binary:struct_from_binary": "(objtype, data)",
    "asyncua.ua.ua_binary:from_binary": "(uatype, data)",
    "asyncua.ua.ua_binary:extensionobject_from_binary": "(data)",
    "asyncua.common.utils:Buffer": "(data, start_pos=0, size=-1)",
    "asyncua.common.utils:Buffer.copy": "(self, size=-1)",
    "asyncua.common.utils:Buffer.skip": "(self, size)",
    "asyncua.common.utils:Buffer.read": "(self, size)",
    "asyncua.common.utils:Buffer.cur_pos": None,
    "asyncua.server.internal_subscription:InternalSubscription._pop_publish_result": "(self)",
    "asyncua.server.internal_subscription:InternalSubscription.monitored_item_srv": None,
    "asyncua.server.internal_subscription:InternalSubscription.pub_request_callback": None,
    "asyncua.server.internal_subscription:InternalSubscription._not_acknowledged_results": None,
    "asyncua.server.internal_subscription:InternalSubscription.republish": "(self, nb)",
    "asyncua.server.internal_subscription:InternalSubscription.enqueue_datachange_event": "(self, mid, eventdata, maxsize)",
    "asyncua.server.subscription_service:SubscriptionService.subscriptions": None,
    "asyncua.server.subscription_service:SubscriptionService.transfer_subscriptions": "(self, params, session_id, callback)",
    "asyncua.server.uaprocessor:UaProcessor.get_publish_request": "(self, subscription_id)",
    "asyncua.server.uaprocessor:UaProcessor.forward_publish_response": "(self, result, requestdata)",
    "asyncua.server.uaprocessor:UaProcessor._publish_results_subs": None,
    "asyncua.server.monitored_item_service:MonitoredItemService._create_data_change_monitored_item": "(self, params)",
    "asyncua.server.monitored_item_service:MonitoredItemService.datachange_callback": "(self, handle, value, error=None)",
    "asyncua.server.monitored_item_service:MonitoredItemService._monitored_datachange": None,
    "asyncua.server.monitored_item_service:MonitoredItemService._monitored_items": None,
    "asyncua.server.monitored_item_service:MonitoredItemService.isub": None,
    "asyncua.server.monitored_item_service:MonitoredItemService.aspace": None,
    "asyncua.server.monitored_item_service:MonitoredItemData.client_handle": None,
    "asyncua.server.monitored_item_service:MonitoredItemData.mode": None,
    "asyncua.server.monitored_item_service:MonitoredItemData.filter": None,
    "asyncua.server.monitored_item_service:MonitoredItemData.read_value_id": None,
    "asyncua.server.monitored_item_service:MonitoredItemData.queue_size": None,
}


# --------------------------------------------------------------------------- client side
def session_of(client) -> Any:
    """The ``UaSession`` of a connected ``asyncua.Client``: the session's own service calls."""
    return client.uaclient.session


def decode_publish_responses(session, decode: Callable[[Any], Any]) -> None:
    """Make ``session.publish`` (which asyncua's and opcua_durable's publish loops call) decode
    each PublishResponse with ``decode(buffer)`` (an asyncua ``Buffer`` at the TypeId) instead of
    ``struct_from_binary``; a decoding error is logged and raised as ``UaStructParsingError``,
    as ``UaSession.publish`` does."""
    from asyncua import ua
    from asyncua.ua.uaerrors import UaStructParsingError

    async def publish(acks):
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await session._send_request(request, timeout=0)
        try:
            return decode(data)
        except Exception as ex:
            session.logger.exception("Error parsing notification from server")
            raise UaStructParsingError from ex

    session.publish = publish


def disable_builtin_publish_loop(session) -> None:
    """asyncua starts no publish loop of its own on this session (``create_subscription`` would):
    the caller runs its own, calling ``session.publish``."""
    session.ensure_publish_loop = lambda: None


def keep_subscriptions_on_close(client) -> None:
    """Closing this client's session (``client.disconnect()``) keeps its subscriptions on the
    server (CloseSession with DeleteSubscriptions false), for a later session to transfer."""
    uaclient = client.uaclient
    close = uaclient.close_session
    uaclient.close_session = lambda _delete_subscriptions: close(False)


def first_cert_from_chain(der: bytes) -> bytes:
    """The leading certificate of a DER certificate chain (a server may send its chain)."""
    from asyncua.client.client import _first_cert_from_chain

    return _first_cert_from_chain(der)


@functools.cache
def binary_codec() -> SimpleNamespace:
    """asyncua's binary decoder pieces for walking a message by hand: ``Buffer`` (``copy``,
    ``skip``, ``read``, ``cur_pos``, ``len``), ``Primitives``, ``nodeid_from_binary``,
    ``struct_from_binary``, ``from_binary``, ``extensionobject_from_binary``."""
    from asyncua.common.utils import Buffer
    from asyncua.ua import ua_binary

    return SimpleNamespace(Buffer=Buffer, Primitives=ua_binary.Primitives, nodeid_from_binary=ua_binary.nodeid_from_binary,
                           struct_from_binary=ua_binary.struct_from_binary, from_binary=ua_binary.from_binary,
                           extensionobject_from_binary=ua_binary.extensionobject_from_binary)


# --------------------------------------------------------------------------- server side
_publish_result_hooks: list[Callable[[Any, Any], None]] = []


def on_publish_result(hook: Callable[[Any, Any], None]) -> None:
    """Call ``hook(address_space, publish_result)`` on every ``PublishResult`` (data or
    keep-alive) a server subscription in this process hands out, before it is sent; it may
    change the result. Idempotent per hook."""
    from asyncua.server.internal_subscription import InternalSubscription

    if hook in _publish_result_hooks:
        return
    if not _publish_result_hooks:
        original = InternalSubscription._pop_publish_result

        def _pop_publish_result(sub):
            result = original(sub)
            aspace = getattr(sub.monitored_item_srv, "aspace", None)
            for h in _publish_result_hooks:
                h(aspace, result)
            return result

        InternalSubscription._pop_publish_result = _pop_publish_result
    _publish_result_hooks.append(hook)


def serve_transferred_subscriptions_from_new_session() -> None:
    """TransferSubscriptions in this process's asyncua server rebinds where a subscription takes
    its PublishRequests from, not only where it sends its responses: a transferred subscription
    answers the new session's next PublishRequest (asyncua keeps taking them from the old,
    possibly dead, connection). Call once (not idempotent: :mod:`~plantmrv.simulators.opcua_conformance` guards it)."""
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

    SubscriptionService.transfer_subscriptions = transfer_subscriptions


def keep_republished_until_acknowledged() -> None:
    """Republish in this process's asyncua server leaves the message in the retransmission
    queue (asyncua removes it), so a client may ask for it again until it acknowledges it."""
    from asyncua import ua
    from asyncua.server.internal_subscription import InternalSubscription

    def republish(self, nb: int) -> ua.NotificationMessage:
        result = self._not_acknowledged_results.get(nb)
        return result.NotificationMessage if result else ua.NotificationMessage()

    InternalSubscription.republish = republish


def check_new_data_change_items(check: Callable[[Any, Any], Any]) -> None:
    """Before this process's asyncua server creates a data-change monitored item, call
    ``check(address_space, create_request)``: a ``MonitoredItemCreateResult`` it returns refuses
    the item with that result; None lets asyncua create it."""
    from asyncua.server.monitored_item_service import MonitoredItemService

    create = MonitoredItemService._create_data_change_monitored_item

    async def _create_data_change_monitored_item(self, params):
        refused = check(self.aspace, params)
        return refused if refused is not None else await create(self, params)

    MonitoredItemService._create_data_change_monitored_item = _create_data_change_monitored_item


def decide_data_change_reports(decide: Callable[[tuple[int, int], Any, Any], bool | None]) -> None:
    """For every new value of an enabled data-change monitored item in this process's asyncua
    server, ``decide(item_key, item, value)``: True queues it for the client, False drops it,
    None leaves it to asyncua's own rule. ``item_key`` is unique per monitored item; ``item`` has
    ``filter``, ``read_value_id``, ``client_handle``, ``queue_size``."""
    from asyncua import ua
    from asyncua.server.monitored_item_service import MonitoredItemService

    original = MonitoredItemService.datachange_callback

    async def datachange_callback(self, handle, value, error=None):
        if error or handle not in self._monitored_datachange:
            return await original(self, handle, value, error)
        mid = self._monitored_datachange[handle]
        item = self._monitored_items[mid]
        if item.mode == ua.MonitoringMode.Disabled:
            return None
        verdict = decide((id(self), mid), item, value)
        if verdict is None:
            return await original(self, handle, value, error)
        if verdict:
            await self.isub.enqueue_datachange_event(mid, ua.MonitoredItemNotification(ClientHandle=item.client_handle, Value=value),
                                                     item.queue_size)
        return None

    MonitoredItemService.datachange_callback = datachange_callback

