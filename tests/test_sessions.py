"""Sessions with real people (real livekit-server, real rtc participants): who a run belongs to,
what `end` means for the people still in the room, `idle` in an empty room, first messages."""

import asyncio

import pytest

from room_helpers import seen_by, wait_for

pytestmark = pytest.mark.livekit

OWNED = """
version: 1
name: owner
livekit: {room: ROOM, identity: owner}
on:
  participant_connected:
    - wait: 1.5
    - send: {to: "{{ participant.id }}", data: "hello {{ participant.id }}"}
  data_received:
    - if: "{{ data == 'slow' }}"
      then:
        - wait: 1.5
        - send: {data: "late answer for {{ participant.id }}"}
        - end: {}
      else:
        - send: {to: "{{ participant.id }}", data: pong}
"""


async def test_a_person_who_leaves_takes_their_runs_with_them(run_bot, people, room_name):
    bot, task = await run_bot(OWNED.replace("ROOM", room_name))
    bob = await people(room_name, "bob")
    assert await bob.next_data(sender="owner") == "hello bob"
    alice = await people(room_name, "alice")  # her greeting waits 1.5 s: she leaves before it
    await seen_by(bot, alice)
    await alice.send("slow")  # this run would broadcast and end the session for everyone
    await asyncio.sleep(0.3)
    await alice.leave()
    await bob.wait_left("alice")
    assert await bob.no_data(2.5, sender="owner")  # no late answer, no broadcast
    await bob.send("ping")
    assert await bob.next_data(sender="owner") == "pong"  # bob's call was not cut off
    assert not task.done() and bot.generations == 1
    cancelled = [(e.event, [s[0] for s in e.steps]) for e in bot.trace.entries
                 if e.participant == "alice" and e.outcome == "cancelled"]
    assert ("participant_connected", ["wait"]) in cancelled  # the stale greeting never ran its send
    assert ("data_received", ["if", "wait"]) in cancelled


QUIZ = """
version: 1
name: quiz
livekit: {room: ROOM, identity: quiz}
on:
  participant_connected:
    - send: {to: "{{ participant.id }}", data: "question for {{ participant.id }}"}
  data_received:
    - if: "{{ data == '42' }}"
      then:
        - send: {to: "{{ participant.id }}", data: correct}
        - end: {}
      else:
        - send: {to: "{{ participant.id }}", data: "heard {{ data }} ({{ room.participants | join(',') }})"}
"""


async def test_after_end_the_person_still_here_is_not_greeted_again(run_bot, people, room_name):
    bot, task = await run_bot(QUIZ.replace("ROOM", room_name))
    ada = await people(room_name, "ada")
    assert await ada.next_data(sender="quiz") == "question for ada"
    await ada.send("42")
    assert await ada.next_data(sender="quiz") == "correct"
    await ada.wait_left("quiz")  # the session ended: the bot left ...
    await wait_for(lambda: bot.generations >= 2 and bot.generation is not None and bot.generation.connected.is_set(),
                   what="the bot to join again for the next session")
    with pytest.raises(asyncio.TimeoutError):  # ... and came back without greeting ada again
        assert await ada.next_data(2.0, sender="quiz") is None
    await ada.send("still here")
    assert await ada.next_data(sender="quiz") == "heard still here (ada)"  # carried over: heard, counted
    ben = await people(room_name, "ben")  # joins after the new session started: greeted
    assert await ben.next_data(sender="quiz") == "question for ben"
    assert not task.done()


IDLE = """
version: 1
name: nudger
livekit: {room: ROOM, identity: nudger}
on:
  idle:
    - after: 1.5
      do: [{send: {data: first nudge}}]
    - after: 3
      do: [{send: {data: last nudge}}]
"""


async def test_idle_waits_for_someone_and_starts_with_the_first_step(run_bot, people, room_name):
    bot, _ = await run_bot(IDLE.replace("ROOM", room_name))
    await asyncio.sleep(3.5)  # an empty room past both steps
    assert not [e for e in bot.trace.entries if e.event == "idle"], "idle fired in an empty room"
    loop = asyncio.get_running_loop()
    joined = loop.time()
    cleo = await people(room_name, "cleo")
    assert await cleo.next_data(5, sender="nudger") == "first nudge"
    first = loop.time() - joined
    assert await cleo.next_data(5, sender="nudger") == "last nudge"
    assert 1.2 <= first <= 2.6, first


FIRST = """
version: 1
name: answerer
livekit: {room: ROOM, identity: answerer}
on:
  data_received:
    - send: {to: "{{ participant.id }}", data: "answer for {{ participant.id }}: {{ data }}"}
"""


async def test_first_messages_from_unannounced_people_are_answered(run_bot, people, room_name):
    bot, _ = await run_bot(FIRST.replace("ROOM", room_name))

    async def arrive(n: int):
        person = await people(room_name, f"p{n}", mic=False)  # announced to the bot up to 3 s late
        await person.send(f"hi {n}")
        return person

    crowd = []
    for n in range(5):  # one after another, 0.3 s apart: all within the server's 3 s announcement tick
        crowd.append(await arrive(n))
        await asyncio.sleep(0.3)
    answers = await asyncio.gather(*(p.next_data(8, sender="answerer") for p in crowd))
    assert answers == [f"answer for p{n}: hi {n}" for n in range(5)]
    notes = [e.note for e in bot.trace.entries if e.event == "data_received"]
    assert all(e.outcome == "ok" for e in bot.trace.entries if e.event == "data_received")
    assert any(note and "arrived before" in note for note in notes), notes


async def test_deeply_nested_json_still_fires_data_received(run_bot, people, room_name):
    bot, _ = await run_bot(FIRST.replace("ROOM", room_name).replace("{{ data }}", "{{ data | length }} {{ message }}"))
    dan = await people(room_name, "dan")
    await seen_by(bot, dan)
    await dan.send("[" * 5000 + "]" * 5000)  # pipecat's own json.loads raises RecursionError on this
    assert await dan.next_data(sender="answerer") == "answer for dan: 10000 {}"


LLM_401 = """
version: 1
name: asker
livekit: {room: ROOM, identity: asker}
pipeline:
  - llm: {type: openai_llm, api_key: "${FAKE_KEY:-wrong-key}", base_url: BASE_URL}
on:
  data_received:
    - llm: {append: [{role: user, content: "{{ data }}"}], run: true}
  error:
    - send: {data: {error: "{{ error.message }}"}}
"""


async def test_an_llm_that_refuses_the_key_is_an_error_not_a_rejoin(run_bot, people, room_name):
    """The LLM is a loopback server answering 401 as OpenAI does (a paid cloud API cannot run here)."""
    from aiohttp import web

    asked = []

    async def refuse(request):
        asked.append(request.path)
        return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                            "code": "invalid_api_key"}}, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"
    try:
        bot, task = await run_bot(LLM_401.replace("ROOM", room_name).replace("BASE_URL", base))
        eve = await people(room_name, "eve")
        await seen_by(bot, eve)
        for turn in range(2):
            await eve.send(f"question {turn}")
            error = await eve.next_data(15, sender="asker")
            assert "401" in error["error"] or "API key" in error["error"], error
            await wait_for(lambda: len(asked) > turn, what="the LLM request")
        assert bot.generations == 1 and not task.done()  # still in the room, never rejoined
    finally:
        await runner.cleanup()


async def test_a_huge_chat_message_is_cut_off_while_it_is_read(run_bot, people, room_name):
    """lk.chat streams are read chunk by chunk up to 64 KiB, never whole into memory first."""
    chatty = FIRST.replace("data_received:", "chat_received:\n    - send: {to: \"{{ participant.id }}\", "
                           "data: \"chat of {{ text | length }}\"}\n  data_received:")
    bot, _ = await run_bot(chatty.replace("ROOM", room_name))
    eli = await people(room_name, "eli")
    await seen_by(bot, eli)
    await eli.room.local_participant.send_text("x" * 200_000, topic="lk.chat")
    await eli.room.local_participant.send_text("short", topic="lk.chat")
    assert await eli.next_data(10, sender="answerer") == "chat of 5"  # the huge one never became a run
    await eli.send("ping")
    assert await eli.next_data(10, sender="answerer") == "answer for eli: ping"
