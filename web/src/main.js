// The lkrun playground page: join a bot's room as a person, talk, type, watch the trace, and
// edit the bot's file (editor.js).
// Plain JS on top of livekit-client; bundled by build.mjs into runner/playground/static/dist/.
import { Room, RoomEvent, Track } from 'livekit-client';
import { createEditor } from './editor.js';
import { createTranscript } from './transcript.js';
import { createGraph } from './graph.js';
import { createTry } from './try.js';

const $ = (id) => document.getElementById(id);
const ui = {
  bot: $('bot'), join: $('join'), mic: $('mic'), level: $('level'), status: $('status'),
  roomInfo: $('room-info'), messages: $('messages'), composer: $('composer'), sendAs: $('send-as'),
  text: $('text'), send: $('send'), trace: $('trace'), clearTrace: $('clear-trace'), audio: $('audio'),
  transcript: $('transcript'), agentState: $('agent-state'), agentName: $('agent-name'),
};
const MAX_ITEMS = 300;

// What the page knows, readable from the console and by the browser test (never the token).
const state = {
  bots: [], bot: null, room: null, identity: null, connected: false, micOn: false,
  audio: { level: 0, max: 0, loudFrames: 0, tracks: 0 }, received: [], traces: 0, notices: 0,
};
window.playground = state;

function setStatus(text, error = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

async function api(path) {
  const response = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clock(seconds) {
  const d = seconds ? new Date(seconds * 1000) : new Date();
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function cap(list) {
  while (list.children.length > MAX_ITEMS) list.removeChild(list === ui.trace ? list.lastChild : list.firstChild);
}

// ---- bots -----------------------------------------------------------------------------------
async function loadBots() {
  try {
    const { bots, csrf, edit } = await api('/api/bots');
    state.csrf = csrf; // sent with the editor's POSTs (a new one each time lkrun starts)
    state.edit = edit;
    const before = state.bots.find((b) => b.id === ui.bot.value);
    state.bots = bots;
    ui.bot.replaceChildren(...bots.map((b) => {
      // a file with errors (at start-up, or a new one in a watched folder) is listed to be fixed
      const option = el('option', null, b.running ? `${b.name} (room ${b.room})` : `${b.file} (not running: fix it below)`);
      option.value = b.id;
      option.dataset.running = String(b.running);
      return option;
    }));
    // the same file stays picked when its bot starts (its id changes from the file to the bot's name)
    const again = before && bots.find((b) => b.file === before.file);
    if (again) ui.bot.value = again.id;
    else if (bots.some((b) => b.running)) ui.bot.value = bots.find((b) => b.running).id;
    const picked = bots.find((b) => b.id === ui.bot.value);
    if (!bots.some((b) => b.running)) {
      setStatus(bots.length ? 'no bot is running: fix the file below and save' : 'no bot is running yet; waiting…');
      setTimeout(loadBots, 2000);
    } else if (!state.connected) {
      setStatus(picked && !picked.running ? `${picked.file} is not running: fix it below and save` : 'not connected');
    }
    ui.join.disabled = !state.connected && !(picked && picked.running);
    editor.bots(bots, ui.bot.value);
    graph.show(picked && picked.running ? picked.id : null);
  } catch (err) {
    setStatus(`cannot reach lkrun: ${err.message}`, true);
    setTimeout(loadBots, 2000);
  }
}

// ---- the room ---------------------------------------------------------------------------------
async function join() {
  ui.join.disabled = true;
  setStatus('joining…');
  let session;
  try {
    session = await api('/api/session?bot=' + encodeURIComponent(ui.bot.value));
  } catch (err) {
    setStatus(err.message, true);
    ui.join.disabled = false;
    return;
  }
  const room = new Room({ adaptiveStream: false, dynacast: false });
  state.room = room;
  state.bot = session.bot;
  state.identity = session.identity;
  transcript.reset();
  wire(room);
  transcript.wire(room);
  try {
    await room.connect(session.url, session.token);
  } catch (err) {
    state.room = null;
    setStatus(`could not join: ${err.message}`, true);
    ui.join.disabled = false;
    return;
  }
  state.connected = true;
  room.startAudio().catch(() => {});
  ensureAudioContext();
  ui.join.textContent = 'Leave';
  ui.join.classList.add('leave');
  ui.join.disabled = false;
  ui.mic.disabled = false;
  ui.text.disabled = false;
  ui.send.disabled = false;
  ui.bot.disabled = true;
  ui.roomInfo.textContent = `room ${session.room} as ${session.name} (${session.identity})`;
  setStatus(`connected to ${session.url}`);
  system(`you joined room ${session.room}`);
  for (const p of room.remoteParticipants.values()) system(`${p.identity} is in the room`);
  transcript.refresh(room);
}

async function leave() {
  const room = state.room;
  if (room) await room.disconnect();
}

function onDisconnected(reason) {
  state.connected = false;
  state.room = null;
  state.micOn = false;
  ui.join.textContent = 'Join';
  ui.join.classList.remove('leave');
  ui.join.disabled = false;
  ui.mic.disabled = true;
  ui.mic.setAttribute('aria-pressed', 'false');
  ui.mic.textContent = 'Microphone off';
  ui.text.disabled = true;
  ui.send.disabled = true;
  ui.bot.disabled = false;
  ui.audio.replaceChildren();
  system(`left the room${reason !== undefined ? ` (${reason})` : ''}`);
  setStatus('not connected');
}

function wire(room) {
  room
    .on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
      if (track.kind !== Track.Kind.Audio) return;
      const element = track.attach();
      element.dataset.identity = participant.identity;
      ui.audio.appendChild(element);
      measure(track, participant.identity);
    })
    .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((e) => e.remove()))
    .on(RoomEvent.DataReceived, (payload, participant, kind, topic) => {
      const text = new TextDecoder().decode(payload);
      received(participant ? participant.identity : 'server', text, topic ? `data · ${topic}` : 'data');
    })
    .on(RoomEvent.ParticipantConnected, (p) => system(`${p.identity} joined`))
    .on(RoomEvent.ParticipantDisconnected, (p) => system(`${p.identity} left`))
    .on(RoomEvent.AudioPlaybackStatusChanged, () => {
      if (!room.canPlaybackAudio) setStatus('click anywhere to hear the bot', true);
    })
    .on(RoomEvent.Disconnected, onDisconnected);
  room.registerTextStreamHandler('lk.chat', async (reader, info) => {
    received(info.identity, await reader.readAll(), 'chat');
  });
}

// ---- microphone -----------------------------------------------------------------------------
async function toggleMic() {
  const room = state.room;
  if (!room) return;
  ui.mic.disabled = true;
  try {
    await room.localParticipant.setMicrophoneEnabled(!state.micOn);
    state.micOn = !state.micOn;
  } catch (err) {
    setStatus(`microphone: ${err.message}`, true);
  }
  ui.mic.disabled = false;
  ui.mic.setAttribute('aria-pressed', String(state.micOn));
  ui.mic.textContent = state.micOn ? 'Microphone on' : 'Microphone off';
}

// ---- the bot's audio level (WebAudio AnalyserNode) ---------------------------------------------
let audioContext = null;
function ensureAudioContext() {
  if (!audioContext) audioContext = new AudioContext();
  if (audioContext.state === 'suspended') audioContext.resume().catch(() => {});
  return audioContext;
}

function measure(track, identity) {
  const context = ensureAudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  state.audio.tracks += 1;
  const timer = setInterval(() => {
    if (track.mediaStreamTrack.readyState === 'ended') {
      clearInterval(timer);
      return;
    }
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    const rms = Math.sqrt(sum / samples.length);
    if (state.bot && identity === state.bot.identity) {
      state.audio.level = rms;
      state.audio.max = Math.max(state.audio.max, rms);
      if (rms > 0.01) state.audio.loudFrames += 1;
    }
    ui.level.style.width = `${Math.min(100, Math.round(rms * 400))}%`;
  }, 50);
}

// ---- messages -------------------------------------------------------------------------------
function show(who, text, kind, mine) {
  const item = el('li', mine ? 'msg mine' : 'msg');
  item.dataset.kind = kind;
  const head = el('span', 'who', who);
  head.appendChild(el('span', 'kind', kind));
  item.appendChild(head);
  let body = text;
  let json = null;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') {
      json = text;
      if (typeof parsed.text === 'string') body = parsed.text;
    }
  } catch (_) { /* plain text */ }
  item.appendChild(el('span', 'body', body));
  if (json !== null && body !== text) item.appendChild(el('span', 'json', json));
  ui.messages.appendChild(item);
  cap(ui.messages);
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function received(who, text, kind) {
  state.received.push({ from: who, text, kind });
  show(who, text, kind, false);
}

function system(text) {
  const item = el('li', 'system', text);
  ui.messages.appendChild(item);
  cap(ui.messages);
}

async function send(event) {
  event.preventDefault();
  const room = state.room;
  const text = ui.text.value;
  if (!room || !text.trim()) return;
  const asChat = ui.sendAs.value === 'chat';
  try {
    if (asChat) {
      await room.localParticipant.sendText(text, { topic: 'lk.chat' });
    } else {
      await room.localParticipant.publishData(new TextEncoder().encode(text), { reliable: true });
    }
    show('you', text, asChat ? 'chat' : 'data', true);
    ui.text.value = '';
  } catch (err) {
    setStatus(`not sent: ${err.message}`, true);
  }
}

// ---- the trace (Server-Sent Events from lkrun) ------------------------------------------------
function showValue(value) {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 400 ? text.slice(0, 400) + '…' : text;
}

function traceItem(entry) {
  const kind = {error: 'error', dropped: 'dropped', cancelled: 'cancelled'}[entry.outcome] || 'ok';
  const item = el('li', `entry ${kind}`);
  item.dataset.outcome = entry.outcome;
  item.dataset.event = entry.event;
  item.dataset.bot = entry.bot;
  const head = el('div', 'head');
  head.append(el('span', 'time', clock(entry.time)), el('span', 'bot', entry.bot), el('span', 'event', entry.event));
  if (entry.participant) head.appendChild(el('span', 'who', entry.participant));
  head.appendChild(el('span', 'ms', `${entry.ms} ms`));
  item.appendChild(head);
  if (entry.detail !== undefined && entry.detail !== null) item.appendChild(el('div', 'detail', showValue(entry.detail)));
  if (entry.note) item.appendChild(el('div', 'note', entry.note));
  if (entry.outcome === 'cancelled') item.appendChild(el('div', 'note', 'stopped: the person it belonged to left'));
  const steps = el('ul', 'steps');
  for (const step of entry.steps || []) {
    const line = el('li');
    line.dataset.action = step.action;
    line.append(el('span', 'action', step.action), ' ', el('span', 'where', `${entry.file}:${step.line}`), ' ',
      el('span', 'value', showValue(step.value)));
    steps.appendChild(line);
  }
  item.appendChild(steps);
  if (entry.error) item.appendChild(el('div', 'err', entry.error));
  return item;
}

function noticeItem(notice) {
  const item = el('li', `notice ${notice.kind}`);
  item.dataset.kind = notice.kind;
  const head = el('div', 'head');
  head.append(el('span', 'time', clock(notice.time)), el('span', 'event', notice.kind === 'reload' ? 'reload' : notice.kind));
  if (notice.bot) head.appendChild(el('span', 'bot', notice.bot));
  item.append(head, el('div', 'message', notice.message));
  return item;
}

function follow() {
  const source = new EventSource('/api/trace');
  source.onmessage = (event) => {
    let item;
    try { item = JSON.parse(event.data); } catch (_) { return; }
    if (item.type === 'trace') {
      state.traces += 1;
      ui.trace.prepend(traceItem(item));
    } else if (item.type === 'notice') {
      state.notices += 1;
      ui.trace.prepend(noticeItem(item));
      editor.notice(item);
      if (item.kind === 'reload' || item.kind === 'error') loadBots();
    }
    cap(ui.trace);
    graph.seen(item);
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(follow, 2000);
  };
}

// ---- start -----------------------------------------------------------------------------------
const editor = createEditor(state);
const graph = createGraph(state);
createTry(state);
const transcript = createTranscript(state, { list: ui.transcript, agentBadge: ui.agentState, agentName: ui.agentName });
ui.bot.addEventListener('change', () => {
  const picked = state.bots.find((b) => b.id === ui.bot.value);
  if (!state.connected) {
    ui.join.disabled = !(picked && picked.running);
    setStatus(picked && !picked.running ? `${picked.file} is not running: fix it below and save` : 'not connected');
  }
  editor.open(ui.bot.value);
  graph.show(picked && picked.running ? picked.id : null);
});
ui.join.addEventListener('click', () => (state.connected ? leave() : join()));
ui.mic.addEventListener('click', toggleMic);
ui.composer.addEventListener('submit', send);
ui.clearTrace.addEventListener('click', () => ui.trace.replaceChildren());
document.addEventListener('click', () => {
  if (state.room && !state.room.canPlaybackAudio) state.room.startAudio().then(() => setStatus('connected'));
  if (audioContext && audioContext.state === 'suspended') audioContext.resume().catch(() => {});
});
loadBots();
follow();
