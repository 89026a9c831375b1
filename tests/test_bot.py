"""A data-only bot in a real room, in this process, against the real LiveKit server.

Greetings (once per identity), ping/pong to the sender only, chat text streams, untrusted
text that is never a template, DTMF, set_metadata seen by people, mute as an unsubscribe
checked on the bot's side, ending when the room empties, after_speech sends without a voice,
a failing action that fires `error` and stops its run, and per-person rate limits.
"""

import asyncio

import pytest

from room_helpers import seen_by, wait_for

pytestmark = pytest.mark.livekit

GREETER = """
version: 1
name: greeter
livekit: {room: ROOM, identity: greeter}
vars: {greeting: Welcome}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: "{{ vars.greeting }}, {{ participant.name or participant.id }}!"}}
  data_received:
    - if: "{{ message.text == 'ping' or data == 'ping' }}"
      then:
        - send: {to: "{{ participant.id }}", data: {text: pong}}
      else:
        - send: {to: "{{ participant.id }}", data: {echo: "{{ data }}"}}
  chat_received:
    - chat: {text: "you said {{ text }}", to: "{{ participant.id }}"}
"""


async def test_greets_each_person_and_answers_ping_only_to_sender(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    alice = await people(room_name, "alice", "Alice")
    assert await alice.next_data() == {"text": "Welcome, Alice!"}
    bob = await people(room_name, "bob")
    assert await bob.next_data() == {"text": "Welcome, bob!"}
    await alice.send({"text": "ping"})
    assert await alice.next_data() == {"text": "pong"}
    assert await bob.no_data(1.0, sender="greeter")



@pytest.mark.parametrize("rtvi", [False, True])
async def test_pipecat_reads_packets_only_for_rtvi(run_bot, people, room_name, monkeypatch, rtvi):
    """lkrun reads each data packet itself; pipecat's second reading of it (a task, a JSON parse and
    a frame through the pipeline per packet) is skipped unless RTVI, whose processor needs it."""
    from pipecat.transports.livekit.transport import LiveKitTransportClient
    original = LiveKitTransportClient._async_on_data_received
    seen = []

    async def counted(self, data):
        seen.append(data.data)
        await original(self, data)

    monkeypatch.setattr(LiveKitTransportClient, "_async_on_data_received", counted)
    text = GREETER.replace("ROOM", room_name) + ("session: {rtvi: true}\n" if rtvi else "")
    bot, _ = await run_bot(text)
    alice = await people(room_name, "alice", "Alice")
    assert await alice.next_data() == {"text": "Welcome, Alice!"}
    await seen_by(bot, alice)
    await alice.send({"text": "ping"})
    assert await alice.next_data(sender="greeter") == {"text": "pong"}
    await asyncio.sleep(0.2)  # pipecat's task for the packet, if there is one, has run by now
    assert seen == ([b'{"text": "ping"}'] if rtvi else [])

async def test_a_person_already_in_the_room_is_greeted_once(run_bot, people, room_name):
    alice = await people(room_name, "alice", "Alice")  # before the bot: pipecat enumerates her at connect
    bot, _ = await run_bot(GREETER.replace("ROOM", room_name))
    assert await alice.next_data(sender="greeter") == {"text": "Welcome, Alice!"}
    await alice.send({"text": "ping"})
    assert await alice.next_data(sender="greeter") == {"text": "pong"}  # not a second greeting first
    assert ("participant_connected", "alice") in bot.state.joined


async def test_untrusted_text_is_never_a_template(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    mallory = await people(room_name, "mallory", "{{ 7*7 }}")
    assert await mallory.next_data() == {"text": "Welcome, {{ 7*7 }}!"}
    await mallory.send("{{ 7*7 }}")
    assert await mallory.next_data() == {"echo": "{{ 7*7 }}"}


async def test_chat_text_stream_round_trip(run_bot, people, room_name):
    await run_bot(GREETER.replace("ROOM", room_name))
    alice = await people(room_name, "alice")
    await alice.next_data()
    await alice.room.local_participant.send_text("hello there", topic="lk.chat")
    sender, text = await asyncio.wait_for(alice.chat.get(), 10)
    assert (sender, text) == ("greeter", "you said hello there")


DTMF = """
version: 1
name: keypad
livekit: {room: ROOM, identity: keypad}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: ready}}
  dtmf_event:
    - send: {to: "{{ participant.id }}", data: {digit: "{{ digit }}"}}
"""


async def test_dtmf_from_a_participant_fires_dtmf_event(run_bot, people, room_name):
    await run_bot(DTMF.replace("ROOM", room_name))
    carol = await people(room_name, "carol")
    assert await carol.next_data(sender="keypad") == {"text": "ready"}  # the bot knows carol now
    await carol.room.local_participant.publish_dtmf(code=11, digit="#")
    assert await carol.next_data(sender="keypad") == {"digit": "#"}
    await carol.room.local_participant.publish_dtmf(code=7, digit="7")
    assert await carol.next_data(sender="keypad") == {"digit": "7"}


CONTROLS = """
version: 1
name: controls
livekit: {room: ROOM, identity: controls}
params: {audio_in_enabled: true}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: ready}}
  data_received:
    - choose:
        - when: "{{ message.do == 'status' }}"
          do:
            - set_metadata: "busy with {{ participant.id }}"
        - when: "{{ message.do == 'mute' }}"
          do:
            - mute: "{{ participant.id }}"
            - send: {to: "{{ participant.id }}", data: {text: muted}}
        - when: "{{ message.do == 'unmute' }}"
          do:
            - unmute: "{{ participant.id }}"
            - send: {to: "{{ participant.id }}", data: {text: unmuted}}
"""


async def test_set_metadata_is_seen_by_the_participant(run_bot, people, room_name):
    await run_bot(CONTROLS.replace("ROOM", room_name))
    dave = await people(room_name, "dave")
    assert await dave.next_data(sender="controls") == {"text": "ready"}
    await dave.send({"do": "status"})
    who, metadata = await asyncio.wait_for(dave.metadata.get(), 10)
    assert (who, metadata) == ("controls", "busy with dave")
    assert dave.room.remote_participants["controls"].metadata == "busy with dave"


async def test_mute_unsubscribes_the_participants_audio(run_bot, people, room_name):
    from livekit import rtc

    bot, _ = await run_bot(CONTROLS.replace("ROOM", room_name))
    erin = await people(room_name, "erin")
    assert await erin.next_data(sender="controls") == {"text": "ready"}

    def erin_audio():
        room = bot.generation.room if bot.generation else None
        remote = room.remote_participants.get("erin") if room else None
        pubs = [p for p in (remote.track_publications.values() if remote else ()) if p.kind == rtc.TrackKind.KIND_AUDIO]
        return pubs[0] if pubs else None

    await wait_for(lambda: erin_audio() is not None and erin_audio().subscribed, what="the bot subscribing erin's mic")
    await erin.send({"do": "mute"})
    assert await erin.next_data(sender="controls") == {"text": "muted"}
    await wait_for(lambda: not erin_audio().subscribed, what="erin's mic unsubscribed")
    assert "erin" in bot.generation.muted
    await erin.send({"do": "unmute"})
    assert await erin.next_data(sender="controls") == {"text": "unmuted"}
    await wait_for(lambda: erin_audio().subscribed, what="erin's mic subscribed again")


LEAVER = """
version: 1
name: host
livekit: {room: ROOM, identity: host}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: {text: "hi {{ participant.id }}"}}
  data_received:
    - send: {to: "{{ participant.id }}", data: {people: "{{ room.participants | join(',') }}"}}
  participant_left:
    - if: "{{ room.participants | length == 0 }}"
      then: [{end: {}}]
"""


async def test_bot_ends_and_leaves_when_the_last_person_leaves(run_bot, people, room_name):
    bot, task = await run_bot(LEAVER.replace("ROOM", room_name), once=True)
    # a hidden observer: in the room, but not one of room.participants
    watcher = await people(room_name, "watcher", hidden=True)
    alice = await people(room_name, "alice")
    assert await alice.next_data(sender="host") == {"text": "hi alice"}
    bob = await people(room_name, "bob")
    assert await bob.next_data(sender="host") == {"text": "hi bob"}
    await alice.leave()
    await bob.wait_left("alice", timeout=30)  # a leave the server missed is noticed by its own timeout (seen once in CI)
    # still here, and alice is gone from room.participants: the server tells bob and the bot
    # separately, so bob may hear of it first (seen once in CI): ask until the bot knows too
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        await bob.send("who")
        answer = await bob.next_data(sender="host")
        if answer == {"people": "bob"} or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert answer == {"people": "bob"}
    assert not task.done()
    await bob.leave()
    await watcher.wait_left("host", timeout=10)
    assert await asyncio.wait_for(task, 10) == "ended"


FAILING = """
version: 1
name: fragile
livekit: {room: ROOM, identity: fragile}
on:
  data_received:
    - choose:
        - when: "{{ message.do == 'queued' }}"
          do:
            - send: {to: "{{ participant.id }}", data: {text: after speech}, after_speech: true}
        - when: "{{ message.do == 'fail' }}"
          do:
            - send: {to: "{{ participant.id }}", data: {text: before}}
            - http: {url: "http://127.0.0.1:PORT/hook", timeout: 2}
            - send: {to: "{{ participant.id }}", data: {text: after}}
        - when: "{{ message.do == 'ping' }}"
          do:
            - send: {to: "{{ participant.id }}", data: {text: pong}}
  error:
    - send: {data: {err: "{{ error.message }}", event: "{{ error.event }}", action: "{{ error.action }}",
                   line: "{{ error.line }}"}}
"""


def closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_after_speech_send_still_sends_in_a_data_only_bot(run_bot, people, room_name):
    bot, _ = await run_bot(FAILING.replace("ROOM", room_name).replace("PORT", str(closed_port())))
    frank = await people(room_name, "frank")
    await seen_by(bot, frank)
    await frank.send({"do": "queued"})
    assert await frank.next_data(sender="fragile") == {"text": "after speech"}


async def test_a_failing_action_fires_error_and_stops_the_run(run_bot, people, room_name):
    bot, _ = await run_bot(FAILING.replace("ROOM", room_name).replace("PORT", str(closed_port())))
    grace = await people(room_name, "grace")
    await seen_by(bot, grace)
    await grace.send({"do": "fail"})
    assert await grace.next_data(sender="fragile") == {"text": "before"}
    error = await grace.next_data(sender="fragile")
    assert error["event"] == "data_received" and error["action"] == "http", error
    assert error["line"] == 14 and "bot.yaml:14:" in error["err"], error  # the http action's line
    assert "cannot connect: connection refused" in error["err"], error
    # the run stopped at the http action: 'after' never comes, the bot still answers
    await grace.send({"do": "ping"})
    assert await grace.next_data(sender="fragile") == {"text": "pong"}


FLOOD = """
version: 1
name: flood
livekit: {room: ROOM, identity: flood}
on:
  data_received:
    - if: "{{ data == 'ping' }}"
      then:
        - send: {to: "{{ participant.id }}", data: pong}
      else:
        - wait: 0.05
        - send: {to: "{{ participant.id }}", data: "echo {{ data }}"}
"""


async def test_a_flood_from_one_person_does_not_delay_another(run_bot, people, room_name):
    bot, _ = await run_bot(FLOOD.replace("ROOM", room_name))
    quiet = await people(room_name, "quiet")
    loud = await people(room_name, "loud")
    await seen_by(bot, quiet, loud)

    async def ping() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await quiet.send("ping")
        assert await quiet.next_data(sender="flood") == "pong"
        return loop.time() - started

    baseline = []
    for _ in range(5):
        baseline.append(await ping())
        await asyncio.sleep(0.15)
    baseline = sorted(baseline)[2]

    async def flood():
        for n in range(200):
            await loud.send(f"spam {n}")
    flooding = asyncio.ensure_future(flood())
    during = []
    while not flooding.done() or len(during) < 5:
        during.append(await ping())
        await asyncio.sleep(0.15)  # pacing: quiet stays under its own rate limit
    await flooding
    during_all, during = during, sorted(during)[len(during) // 2]
    echoes = 0
    while not await loud.no_data(1.0, sender="flood"):
        echoes += 1
    print(f"flood: ping p50 {baseline * 1000:.1f} ms before, {during * 1000:.1f} ms during; "
          f"({len(during_all)} pings); {echoes} of 200 flood runs ran, {bot.dispatcher.dropped} dropped")
    assert during < baseline * 3 + 0.2
    assert bot.dispatcher.dropped > 100 and echoes < 100


async def test_a_duplicate_identity_ends_the_bot_without_a_kick_loop(run_bot, people, room_name):
    from runner.runtime.bot import BotFatal
    bot, task = await run_bot(GREETER.replace("ROOM", room_name))
    impostor = await people(room_name, "greeter", mic=False)  # same identity: LiveKit evicts the bot
    with pytest.raises(BotFatal, match="same identity 'greeter'"):
        await asyncio.wait_for(task, 15)
    await asyncio.sleep(2.0)  # a kick loop would take the identity back from the impostor here
    assert impostor.room.connection_state == rtc_connected()
    assert bot.generations == 1


async def test_removed_from_the_room_the_bot_does_not_rejoin(run_bot, people, room_name, livekit_server):
    from livekit import api

    from runner.runtime.bot import BotFatal
    bot, task = await run_bot(GREETER.replace("ROOM", room_name))
    watcher = await people(room_name, "watcher")
    assert await watcher.next_data(10, sender="greeter") == {"text": "Welcome, watcher!"}
    async with api.LiveKitAPI(livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret) as lk:
        await lk.room.remove_participant(api.RoomParticipantIdentity(room=room_name, identity="greeter"))
    with pytest.raises(BotFatal, match="removed from the room"):
        await asyncio.wait_for(task, 15)
    assert await asyncio.wait_for(watcher.left.get(), 10) == "greeter"
    assert await watcher.no_data(2.0, sender="greeter")
    assert "greeter" not in watcher.room.remote_participants  # it did not come back
    assert bot.generations == 1


def rtc_connected():
    from livekit import rtc
    return rtc.ConnectionState.CONN_CONNECTED
