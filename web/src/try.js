// "Try an event": one event's actions for the text in the editor, rendered as `lkrun simulate`
// shows them (lkrun's own simulate, with effects that only describe themselves: nothing reaches
// the room, the network or the bot's state).
const $ = (id) => document.getElementById(id);
const DATA_EVENTS = new Set(['data_received', 'app_message']);

export function createTry(state) {
  const ui = { form: $('try-form'), event: $('try-event'), events: $('try-events'), participant: $('try-participant'),
    name: $('try-name'), text: $('try-text'), output: $('try-output'), run: $('try-run') };
  const tried = { runs: 0, lines: [], errors: 0 };
  state.tried = tried;

  async function events() {
    try {
      const schema = await (await fetch('/api/schema', { cache: 'no-store' })).json();
      const names = Object.keys((schema.properties && schema.properties.on && schema.properties.on.properties) || {});
      ui.events.replaceChildren(...names.sort().map((n) => Object.assign(document.createElement('option'), { value: n })));
    } catch (_) { /* the list is a convenience */ }
  }

  async function run(event) {
    event.preventDefault();
    const ed = state.editor;
    const bot = (state.bots.find((b) => b.file === ed.file) || {}).id || ed.bot;
    const name = ui.event.value.trim();
    if (!bot || !name) return;
    const value = ui.text.value;
    const body = { bot, event: name, text: ed.view ? ed.view.state.doc.toString() : undefined,
      participant: ui.participant.value.trim(), name: ui.name.value.trim(),
      [DATA_EVENTS.has(name) ? 'data' : 'text_input']: value };
    ui.run.disabled = true;
    try {
      const response = await fetch('/api/try', { method: 'POST', cache: 'no-store', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Lkrun-Csrf': state.csrf || '' }, body: JSON.stringify(body) });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(answer.error || response.statusText);
      tried.runs += 1;
      tried.lines = answer.lines;
      tried.errors = answer.errors;
      ui.output.textContent = answer.lines.join('\n') || '(nothing)';
      ui.output.classList.toggle('error', answer.errors > 0);
    } catch (err) {
      ui.output.textContent = `not run: ${err.message}`;
      ui.output.classList.add('error');
    } finally {
      ui.run.disabled = false;
    }
  }

  ui.form.addEventListener('submit', run);
  events();
  return tried;
}
