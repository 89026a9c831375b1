"""wait_for and collect_digits with real people in a real room (livekit-server, rtc participants,
real DTMF packets; the prompts are spoken by espeak, so "after the prompt finished playing" is
the bot's real speech)."""

import asyncio
import time

import pytest

from room_helpers import seen_by

pytestmark = pytest.mark.livekit

MENU = """
version: 1
name: menu
livekit: {room: ROOM, identity: menu}
pipeline:
  - tts: {type: espeak_tts, settings: {voice: en-us, rate: 260}}
on:
  data_received:
    - repeat:
        count: 3
        do:
          - say: "Press 1 for sales or 2 for support."
          - send: {to: "{{ participant.id }}", data: "prompt {{ repeat.index }}"}
          - wait_for: {event: dtmf_event, match: "^[12]$", timeout: 1.0, continue_on_timeout: true}
          - if: "{{ not wait.timed_out }}"
            then:
              - send: {to: "{{ participant.id }}", data: "{{ 'sales' if wait.digit == '1' else 'support' }}"}
              - stop: answered
    - send: {to: "{{ participant.id }}", data: operator}
  dtmf_event:
    - send: {to: "{{ participant.id }}", data: "not waiting: {{ digit }}"}
"""


async def test_a_phone_menu_by_keypad_for_two_callers_at_once(run_bot, people, room_name):
    bot, _ = await run_bot(MENU.replace("ROOM", room_name))
    ann, ben = await people(room_name, "ann"), await people(room_name, "ben")
    await seen_by(bot, ann, ben)
    await ann.send("call")
    await ben.send("call")
    assert await ann.next_data(10, sender="menu") == "prompt 1"
    assert await ben.next_data(10, sender="menu") == "prompt 1"
    await ann.room.local_participant.publish_dtmf(code=2, digit="2")
    await ben.room.local_participant.publish_dtmf(code=1, digit="1")
    assert await ann.next_data(10, sender="menu") == "support"  # each caller's own digit
    assert await ben.next_data(10, sender="menu") == "sales"
    await ann.room.local_participant.publish_dtmf(code=1, digit="1")  # nobody waits: the handler
    assert await ann.next_data(10, sender="menu") == "not waiting: 1"


async def test_silence_gets_two_re_prompts_timed_from_the_end_of_each_prompt(run_bot, people, room_name):
    bot, _ = await run_bot(MENU.replace("ROOM", room_name))
    stops: list[float] = []
    original = bot.dispatcher.waits.speech.event

    def spy(name):
        if name == "bot_stopped_speaking":
            stops.append(time.monotonic())
        original(name)
    bot.dispatcher.waits.speech.event = spy
    cai = await people(room_name, "cai")
    await seen_by(bot, cai)
    await cai.send("call")
    prompts = []
    for expected in ("prompt 1", "prompt 2", "prompt 3", "operator"):
        assert await cai.next_data(15, sender="menu") == expected
        prompts.append(time.monotonic())
    # each re-prompt comes 1.0 s (the timeout) after the previous prompt finished playing
    for before, after in ((0, 1), (1, 2)):
        finished = max(t for t in stops if t < prompts[after])
        gap = prompts[after] - finished
        assert 0.7 <= gap <= 1.3, (gap, stops, prompts)


DIGITS = """
version: 1
name: keypad
livekit: {room: ROOM, identity: keypad}
on:
  data_received:
    - collect_digits: {terminator: "#", first_timeout: 1.5, timeout: 1.0, save_as: account}
    - send: {to: "{{ participant.id }}", data: {digits: "{{ results.account.digits }}",
                                                timed_out: "{{ results.account.timed_out }}"}}
"""


@pytest.mark.parametrize("keys, expected", [("1234#", {"digits": "1234", "timed_out": False}),
                                             ("12", {"digits": "12", "timed_out": True}),
                                             ("", {"digits": "", "timed_out": True})])
async def test_collect_digits_from_a_real_keypad(run_bot, people, room_name, keys, expected):
    bot, _ = await run_bot(DIGITS.replace("ROOM", room_name))
    dee = await people(room_name, "dee")
    await seen_by(bot, dee)
    await dee.send("start")
    await asyncio.sleep(0.3)
    for key in keys:
        await dee.room.local_participant.publish_dtmf(code=11 if key == "#" else int(key), digit=key)
        await asyncio.sleep(0.1)
    assert await dee.next_data(10, sender="keypad") == expected
