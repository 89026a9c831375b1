"""The pipecat and LiveKit SDK internals lkrun relies on, wrapped in one place.

pipecat offers no public seam for these; tests/test_room_hooks.py is the canary that fails
when a pipecat or livekit upgrade changes them.
"""

from __future__ import annotations


def when_room_created(transport, callback) -> None:
    """pipecat creates its ``rtc.Room`` in the client's ``setup()``, before connecting: call
    ``callback(room)`` then, so lkrun's own room listeners see the first packets too."""
    client = transport._client
    original = client.setup
    done = []

    async def setup(frame_setup):  # called by both the input and the output transport
        await original(frame_setup)
        if not done:
            done.append(True)
            callback(client.room)

    client.setup = setup


def skip_pipecats_packets(transport) -> None:
    """pipecat reads every data packet a second time: a task, a JSON parse and a frame through the
    pipeline per packet, for RTVI and its ``on_data_received`` hook. lkrun reads packets itself
    (``runtime/inbox.py``), so that was pure cost on every message; a bot with RTVI or a
    ``type: python`` stage keeps it (those may read the frames; ``runtime/wiring.py`` decides)."""
    client = transport._client
    client.room.off("data_received", client._on_data_received_wrapper)


def packet_sender(room, admits=None):
    """-> a function giving the sender identity of the data packet being emitted right now.

    The SDK's ``DataPacket`` has no sender when the person has not been announced yet
    (livekit-server announces people who publish nothing every 3 s, and their first packet
    often arrives first); the FFI event it is made from carries the identity.

    ``admits(identity)`` False drops a user packet before the SDK copies it and emits it to
    pipecat (a task and a frame per packet) and lkrun: a flood costs only its FFI event.
    """
    from livekit.rtc._ffi_client import FfiHandle
    current: list[str | None] = [None]
    original = room._on_room_event

    def on_room_event(event):
        if event.WhichOneof("message") != "data_packet_received":
            return original(event)
        packet = event.data_packet_received
        identity = packet.participant_identity or None
        if admits is not None and packet.WhichOneof("value") == "user" and not admits(identity):
            FfiHandle(packet.user.data.handle.id).dispose()  # what the SDK does once it has copied the data
            return None
        current[0] = identity
        try:
            return original(event)
        finally:
            current[0] = None

    room._on_room_event = on_room_event
    return lambda: current[0]


def client_room(transport):
    return transport._client.room



# what a Room's own listener does with an FFI event that is not one of its room events: pass it on
# to its LocalParticipant, which waits on the room's queue only for these two callbacks
_ROOM_QUEUE_CALLBACKS = ("publish_track", "unpublish_track")


def route_room_events(room) -> bool:
    """Give a connected room only its own FFI events, not every room's.

    The SDK hands each event to every ``Room`` of the process (its filter only drops audio and
    video frames); each room's listener then checks the room handle, and queues and awaits the
    event for its participant even when it is another room's. With N bots in a process every
    data packet cost N loop wake-ups: at 50 bots, routing by handle took the ping p50 from
    ~220 to ~90 ms. Kept: the room's events, RPC calls to its participant, and the publish and
    unpublish callbacks its participant waits for (rare; every room still sees those).
    True when the room's subscription was found and narrowed."""
    from livekit.rtc._ffi_client import FfiClient
    handle = room._ffi_handle.handle
    participant = room._local_participant._ffi_handle.handle

    def own(event) -> bool:
        which = event.WhichOneof("message")
        if which == "room_event":
            return event.room_event.room_handle == handle
        if which == "rpc_method_invocation":
            return event.rpc_method_invocation.local_participant_handle == participant
        return which in _ROOM_QUEUE_CALLBACKS

    queue = FfiClient.instance.queue
    with queue._lock:
        for index, (subscriber, loop, _filter) in enumerate(queue._subscribers):
            if subscriber is room._ffi_queue:
                queue._subscribers[index] = (subscriber, loop, own)
                return True
    return False
