// The live transcript and the agent's state, read the way LiveKit's own front ends read them
// (the agents playground, @livekit/components-react's useVoiceAssistant / useTranscriptions):
//
// * transcripts are text streams on the `lk.transcription` topic; each has `lk.segment_id`,
//   `lk.transcribed_track_id` and, at its end, `lk.transcription_final` in its attributes. The
//   stream's sender is the person who spoke (a person's words are sent on their behalf) or the
//   agent (its own words, streamed in step with its audio);
// * the agent is the remote participant whose kind is AGENT (else the bot lkrun named), and its
//   state is its `lk.agent.state` attribute: listening, thinking, speaking.
//
// Nothing here comes from lkrun's own trace: this panel shows exactly what LiveKit's UIs show.
import { ParticipantKind, RoomEvent } from 'livekit-client';

const TOPIC = 'lk.transcription';
const STATE = 'lk.agent.state';
const MAX_LINES = 200;

export function createTranscript(state, elements) {
  const { list, agentBadge, agentName } = elements;
  const lines = new Map(); // segment id -> {item, body}
  state.transcript = []; // {segment, from, track, text, final, at, finalAt} in arrival order
  state.agent = { identity: null, kind: null, state: null, states: [] }; // states: [{state, at}]

  function agentOf(room, botIdentity) {
    const people = [...room.remoteParticipants.values()];
    return people.find((p) => p.kind === ParticipantKind.AGENT)
      || people.find((p) => p.identity === botIdentity) || null;
  }

  function showState(value) {
    agentBadge.textContent = value || '';
    agentBadge.dataset.state = value || '';
  }

  function updateAgent(room, botIdentity) {
    const agent = agentOf(room, botIdentity);
    if (!agent) return;
    const kind = agent.kind === ParticipantKind.AGENT ? 'agent' : 'standard';
    if (state.agent.identity !== agent.identity || state.agent.kind !== kind) {
      state.agent.identity = agent.identity;
      state.agent.kind = kind;
      agentName.textContent = `${agent.name || agent.identity} (${kind === 'agent' ? 'kind AGENT' : 'not an AGENT participant'})`;
    }
    const value = agent.attributes ? agent.attributes[STATE] : undefined;
    if (value && value !== state.agent.state) {
      state.agent.state = value;
      state.agent.states.push({ state: value, at: Date.now() });
      showState(value);
    }
  }

  function line(segment, from, mine) {
    let found = lines.get(segment);
    if (found) return found;
    const item = document.createElement('li');
    item.className = mine ? 'line person' : 'line agent';
    item.dataset.segment = segment;
    item.dataset.from = from;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = from;
    const body = document.createElement('span');
    body.className = 'body';
    item.append(who, body);
    list.appendChild(item);
    while (list.children.length > MAX_LINES) {
      lines.delete(list.firstChild.dataset.segment);
      list.removeChild(list.firstChild);
    }
    found = { item, body, entry: null };
    lines.set(segment, found);
    return found;
  }

  // who spoke: the owner of the transcribed track (the page's own microphone is the local
  // participant's), else the stream's sender
  function speaker(room, track, sender) {
    if (track) {
      for (const p of [room.localParticipant, ...room.remoteParticipants.values()]) {
        if (p && p.trackPublications && p.trackPublications.has(track)) return p.identity;
      }
    }
    return sender;
  }

  async function onStream(room, reader, info) {
    const attrs = reader.info.attributes || {};
    const segment = attrs['lk.segment_id'] || reader.info.id;
    const from = speaker(room, attrs['lk.transcribed_track_id'], info.identity);
    const agentIdentity = state.agent.identity || (state.bot && state.bot.identity);
    const shown = line(segment, from === room.localParticipant.identity ? 'you' : from, from !== agentIdentity);
    // a segment arrives as several streams (interim ones, then the final) or as one delta stream
    let entry = state.transcript.find((e) => e.segment === segment);
    if (!entry) {
      entry = { segment, from, sender: info.identity, track: attrs['lk.transcribed_track_id'] || null, text: '', final: false,
        at: Date.now(), finalAt: null };
      state.transcript.push(entry);
    }
    let text = '';
    shown.item.classList.add('interim');
    for await (const chunk of reader) {
      text += chunk;
      entry.text = text;
      shown.body.textContent = text;
      list.scrollTop = list.scrollHeight;
    }
    const final = (reader.info.attributes || {})['lk.transcription_final'] === 'true';
    if (final) {
      entry.final = true;
      entry.finalAt = Date.now();
      shown.item.classList.remove('interim');
      shown.item.dataset.final = 'true';
    }
  }

  return {
    // call before room.connect: handlers must be in place when the first stream arrives
    wire(room) {
      room.registerTextStreamHandler(TOPIC, (reader, info) => {
        onStream(room, reader, info).catch((err) => console.warn(`transcript stream: ${err.message}`));
      });
      const refresh = () => updateAgent(room, state.bot && state.bot.identity);
      room
        .on(RoomEvent.ParticipantAttributesChanged, refresh)
        .on(RoomEvent.ParticipantConnected, refresh)
        .on(RoomEvent.Connected, refresh)
        .on(RoomEvent.ParticipantDisconnected, (p) => {
          if (p.identity === state.agent.identity) showState('');
        });
    },
    refresh(room) {
      updateAgent(room, state.bot && state.bot.identity);
    },
    reset() {
      lines.clear();
      list.replaceChildren();
      state.transcript = [];
      state.agent = { identity: null, kind: null, state: null, states: [] };
      agentName.textContent = 'no agent in the room yet';
      showState('');
    },
  };
}
