"""The canary for the SDK and pipecat internals lkrun relies on (runner/runtime/room_hooks.py).

A livekit or pipecat upgrade that renames or reshapes one of them fails here, by name, instead
of silently losing first messages (packet_sender) or floods reaching pipecat again (admits).
"""

import inspect

from livekit import rtc
from livekit.rtc._proto import room_pb2

from runner.runtime import room_hooks


def test_the_sdk_room_still_has_the_internals_lkrun_wraps():
    assert callable(getattr(rtc.Room, "_on_room_event", None))
    source = inspect.getsource(rtc.Room._on_room_event)
    branch = source[source.index('"data_packet_received"'):]
    assert "packet.participant_identity" in branch
    assert "FfiHandle(owned_buffer_info.handle.id).dispose()" in branch  # what an early drop must do too


def test_pipecats_livekit_client_still_creates_its_room_in_setup():
    from pipecat.transports.livekit.transport import LiveKitTransportClient
    assert "room" in inspect.getsource(LiveKitTransportClient.setup)
    assert "self.room" in inspect.getsource(LiveKitTransportClient)


class FakeRoom:
    def __init__(self):
        self.seen = []

    def _on_room_event(self, event):
        self.seen.append(event)


def _data_event(identity: str) -> room_pb2.RoomEvent:
    event = room_pb2.RoomEvent()
    event.data_packet_received.participant_identity = identity
    event.data_packet_received.user.data.handle.id = 4242
    event.data_packet_received.user.topic = "t"
    return event


def test_a_packet_the_gate_refuses_is_disposed_and_never_reaches_the_sdk(monkeypatch):
    import livekit.rtc._ffi_client as ffi
    disposed = []

    class Handle:
        def __init__(self, handle_id):
            self.handle_id = handle_id

        def dispose(self):
            disposed.append(self.handle_id)
    monkeypatch.setattr(ffi, "FfiHandle", Handle)
    room = FakeRoom()
    sender = room_hooks.packet_sender(room, admits=lambda identity: identity != "loud")
    room._on_room_event(_data_event("loud"))
    assert room.seen == [] and disposed == [4242]
    seen_sender = []
    original = FakeRoom._on_room_event

    def record(event):  # the SDK's handler, which emits data_received: the sender is known then
        seen_sender.append(sender())
        original(room, event)
    room2 = FakeRoom()
    room2._on_room_event = record
    sender = room_hooks.packet_sender(room2, admits=lambda identity: identity != "loud")
    room2._on_room_event(_data_event("quiet"))
    assert seen_sender == ["quiet"] and sender() is None and disposed == [4242]


def test_pipecat_still_reads_packets_through_the_listener_lkrun_removes():
    """skip_pipecats_packets takes this exact bound method off the room's data_received."""
    from pipecat.transports.livekit.transport import LiveKitTransportClient
    assert 'self.room.on("data_received")(self._on_data_received_wrapper)' in inspect.getsource(
        LiveKitTransportClient.setup)
    assert callable(getattr(rtc.EventEmitter, "off", None))


def test_the_sdk_still_fans_every_event_out_to_every_room_and_what_a_room_needs_of_it():
    import livekit.rtc._ffi_client as ffi
    import livekit.rtc.participant as participant
    connect = inspect.getsource(rtc.Room.connect)
    assert "self._ffi_queue = FfiClient.instance.queue.subscribe(" in connect and "filter_fn=" in connect
    assert "for queue, loop, filter_fn in self._subscribers" in inspect.getsource(ffi.FfiQueue.put)
    listen = inspect.getsource(rtc.Room._listen_task)
    assert '"rpc_method_invocation"' in listen and "event.room_event.room_handle == self._ffi_handle.handle" in listen
    # the participant waits on the room's queue only for the callbacks route_room_events keeps
    uses = [name for name, fn in inspect.getmembers(participant.LocalParticipant, inspect.isfunction)
            if "self._room_queue.subscribe()" in inspect.getsource(fn)]
    assert sorted(uses) == sorted(room_hooks._ROOM_QUEUE_CALLBACKS), uses


async def test_a_routed_room_gets_only_its_own_events_and_still_publishes_and_answers_rpc(people, room_name):
    import asyncio

    a = await people(room_name, "a", mic=False)
    b = await people(room_name + "-elsewhere", "b", mic=False)
    c = await people(room_name, "c", mic=False)
    assert room_hooks.route_room_events(a.room) and room_hooks.route_room_events(b.room)
    foreign = []
    b_queue, b_handle = b.room._ffi_queue, b.room._ffi_handle.handle
    put = b_queue.put_nowait

    def counting_put(event):
        if event.WhichOneof("message") != "room_event" or event.room_event.room_handle != b_handle:
            foreign.append(event.WhichOneof("message"))
        put(event)

    b_queue.put_nowait = counting_put
    got = []
    a.room.on("data_received", lambda packet: got.append(packet.data))
    for i in range(20):
        await c.room.local_participant.publish_data(f"m{i}".encode(), reliable=True)
    for _ in range(200):
        if len(got) == 20:
            break
        await asyncio.sleep(0.02)
    assert got == [f"m{i}".encode() for i in range(20)]  # every packet, in order
    assert foreign == [], foreign  # the other room's events never reached b

    a.room.local_participant.register_rpc_method("ping", lambda data: "pong " + data.payload)
    answer = await c.room.local_participant.perform_rpc(destination_identity="a", method="ping", payload="x")
    assert answer == "pong x"
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    publication = await asyncio.wait_for(a.room.local_participant.publish_track(track), 10)
    assert publication.sid
    await asyncio.wait_for(a.room.local_participant.unpublish_track(publication.sid), 10)
