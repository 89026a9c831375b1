// The playground's editor pane: the running bot's file in CodeMirror 6, completion and hover from
// the bot file schema, problems from lkrun's own checker as you type, save with reload feedback,
// conflicts that never lose an edit, and drafts kept by lkrun (they survive a restart).
import './csp.js';
import { EditorView, basicSetup } from 'codemirror';
import { EditorState } from '@codemirror/state';
import { keymap, hoverTooltip } from '@codemirror/view';
import { indentWithTab } from '@codemirror/commands';
import { yaml } from '@codemirror/lang-yaml';
import { linter, lintGutter } from '@codemirror/lint';
import { autocompletion } from '@codemirror/autocomplete';
import { SchemaIndex, contextAt, hoverAt, PLACEHOLDER } from './schema.js';

const CHECK_DELAY = 400; // ms after the last keystroke
const DRAFT_DELAY = 1000;
const $ = (id) => document.getElementById(id);

export function createEditor(state) {
  const ui = {
    panel: $('editor-panel'), host: $('editor'), file: $('editor-file'), save: $('editor-save'),
    revert: $('editor-revert'), status: $('editor-status'), problems: $('editor-problems'),
    banner: $('editor-banner'),
  };
  const ed = {
    file: null, bot: null, loaded: '', digest: null, dirty: false, problems: [], checks: 0,
    status: '', statusKind: '', waitingReload: false, reload: true, schema: false, kept: null, edit: true,
  };
  state.editor = ed;
  let schema = null;
  let view = null;
  let draftTimer = null;
  let draftSent = null; // the text lkrun holds as this file's draft (null: none)

  // ---- talking to lkrun -------------------------------------------------------------------------
  async function call(path, body) {
    const response = await fetch(path, {
      method: body === undefined ? 'GET' : 'POST', cache: 'no-store', credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json', 'X-Lkrun-Csrf': state.csrf || '' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 409 && answer.conflict) return answer;
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  }
  const botId = () => {
    const bot = state.bots.find((b) => b.file === ed.file);
    return bot ? bot.id : ed.bot;
  };

  fetch('/api/schema', { cache: 'no-cache', credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.statusText))))
    .then((root) => { schema = new SchemaIndex(root); ed.schema = true; })
    .catch(() => { /* completion and hover stay off; checking still works */ });

  function setStatus(text, kind = '') {
    ed.status = text;
    ed.statusKind = kind;
    ui.status.textContent = text;
    ui.status.className = kind;
  }

  // ---- diagnostics: lkrun's checker, the same problems as `lkrun validate` ------------------------
  function diagnostic(doc, p) {
    const line = doc.line(Math.min(Math.max(1, p.line), doc.lines));
    const from = line.from + Math.min(Math.max(0, p.col - 1), line.length);
    const word = /^[^\s:,{}[\]]+/.exec(line.text.slice(from - line.from));
    const to = word ? from + word[0].length : Math.min(line.to, from + 1);
    const severity = { error: 'error', warning: 'warning' }[p.severity] || 'info';
    return { from, to, severity, source: 'lkrun', message: p.hint ? `${p.message}\nhint: ${p.hint}` : p.message };
  }

  function showProblems(problems) {
    ed.problems = problems;
    ui.problems.replaceChildren(...problems.map((p) => {
      const item = document.createElement('li');
      item.className = p.severity;
      item.dataset.line = p.line;
      item.textContent = `${p.file}:${p.line}:${p.col}: ${p.severity}: ${p.message}`;
      if (p.hint) {
        const hint = document.createElement('div');
        hint.className = 'hint';
        hint.textContent = `hint: ${p.hint}`;
        item.appendChild(hint);
      }
      item.addEventListener('click', () => {
        const d = diagnostic(view.state.doc, p);
        view.dispatch({ selection: { anchor: d.from, head: d.to }, scrollIntoView: true });
        view.focus();
      });
      return item;
    }));
    ui.problems.hidden = !problems.length;
  }

  async function check(v) {
    if (!ed.file) return [];
    const text = v.state.doc.toString();
    let answer;
    try {
      answer = await call('/api/check', { bot: botId(), text });
    } catch (err) {
      return [{ from: 0, to: 0, severity: 'info', message: `not checked: ${err.message}` }];
    }
    if (v.state.doc.toString() !== text) return []; // typed on meanwhile: the next check comes
    ed.checks += 1;
    showProblems(answer.problems);
    return answer.problems.map((p) => diagnostic(v.state.doc, p));
  }

  // ---- completion and hover from the schema ----------------------------------------------------
  function complete(context) {
    if (!schema) return null;
    const word = context.matchBefore(/[\w$-]*/);
    if (!word || (word.from === word.to && !context.explicit)) return null;
    const text = context.state.doc.toString();
    const withMark = text.slice(0, context.pos) + PLACEHOLDER + text.slice(context.pos);
    const where = contextAt(withMark, context.pos + PLACEHOLDER.length);
    if (!where) return null;
    const options = [];
    const info = (item) => [item.text, item.facts].filter(Boolean).join('\n') || undefined;
    if (where.kind !== 'value') {
      for (const key of schema.keys(where.path, where.data)) {
        options.push({ label: key.name, type: 'property', apply: `${key.name}: `, detail: key.deprecated ? 'deprecated' : undefined,
          info: info(key), boost: key.deprecated ? -10 : 0 });
      }
    }
    if (where.kind !== 'key') {
      for (const value of schema.values(where.path, where.data)) {
        options.push({ label: value.name, type: 'enum', info: value.text || undefined });
      }
    }
    return options.length ? { from: word.from, options, validFor: /^[\w$-]*$/ } : null;
  }

  const hover = hoverTooltip((v, pos, side) => {
    if (!schema) return null;
    const at = hoverAt(v.state.doc.toString(), pos, side);
    if (!at) return null;
    let text = '';
    let facts = '';
    if (at.kind === 'key') {
      ({ text, facts } = schema.describe(schema.at(at.path, at.data)));
    } else {
      text = schema.valueInfo(at.value).text;
    }
    if (!text && !facts) return null;
    const name = at.kind === 'key' ? at.path[at.path.length - 1] : at.value;
    return {
      pos: at.from, end: at.to, above: true,
      create() {
        const dom = document.createElement('div');
        dom.className = 'lk-hover';
        const head = document.createElement('b');
        head.textContent = String(name);
        dom.appendChild(head);
        if (text) dom.appendChild(Object.assign(document.createElement('div'), { textContent: text }));
        if (facts) dom.appendChild(Object.assign(document.createElement('div'), { className: 'facts', textContent: facts }));
        return { dom };
      },
    };
  });

  // ---- the view ------------------------------------------------------------------------------------
  function newState(text) {
    return EditorState.create({
      doc: text,
      extensions: [
        basicSetup, yaml(), keymap.of([indentWithTab, { key: 'Mod-s', preventDefault: true, run: () => { save(); return true; } }]),
        EditorState.tabSize.of(2), lintGutter(), linter(check, { delay: CHECK_DELAY }),
        autocompletion({ override: [complete] }), hover,
        EditorView.updateListener.of((u) => { if (u.docChanged) changed(); }),
      ],
    });
  }
  view = new EditorView({ state: newState(''), parent: ui.host });
  ed.view = view;

  function text() { return view.state.doc.toString(); }

  function changed() {
    ed.dirty = text() !== ed.loaded;
    ui.save.disabled = !ed.dirty || !ed.edit;
    ui.revert.disabled = !ed.dirty;
    ui.file.textContent = ed.file ? `${ed.file}${ed.dirty ? ' (not saved)' : ''}` : '';
    clearTimeout(draftTimer);
    draftTimer = setTimeout(keepDraft, DRAFT_DELAY);
  }

  async function keepDraft(options = {}) {
    clearTimeout(draftTimer);
    if (!ed.edit) return; // lkrun --no-edit: nothing is written, drafts included
    if (!ed.file) return;
    const body = ed.dirty ? { bot: botId(), text: text(), base: ed.digest } : { bot: botId(), text: null };
    if (body.text === draftSent) return;
    try {
      if (options.keepalive) {
        fetch('/api/draft', { method: 'POST', keepalive: true, credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-Lkrun-Csrf': state.csrf || '' }, body: JSON.stringify(body) });
      } else {
        await call('/api/draft', body);
      }
      draftSent = body.text;
    } catch (err) {
      setStatus(`your changes are not kept by lkrun: ${err.message}`, 'error');
    }
  }

  function load(file, contents, digest) {
    ed.loaded = contents;
    ed.digest = digest;
    view.setState(newState(contents));
    ed.dirty = false;
    changed();
  }

  function replaceText(contents) {
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: contents } });
  }

  // ---- opening a bot's file ----------------------------------------------------------------------
  async function open(id) {
    if (!id) return;
    if (ed.file && ed.dirty) await keepDraft();
    let answer;
    try {
      answer = await call('/api/file?bot=' + encodeURIComponent(id));
    } catch (err) {
      setStatus(`cannot open the bot file: ${err.message}`, 'error');
      return;
    }
    ed.file = answer.file;
    ed.bot = id;
    ed.openedAt = Date.now();
    ed.reload = answer.reload;
    ed.edit = answer.edit !== false;
    ed.waitingReload = false;
    draftSent = answer.draft ? answer.draft.text : null;
    hideBanner();
    load(answer.file, answer.text, answer.digest);
    const entry = state.bots.find((b) => b.file === answer.file);
    if (!ed.edit) {
      setStatus('read-only: lkrun runs with --no-edit (problems are still shown as you type)');
    } else if (entry && !entry.running) {
      setStatus(answer.reload ? 'not running: this file has errors; fix them and save, and the bot starts'
        : 'not running: this file has errors (lkrun runs without reload: fix them, save, restart lkrun)', 'error');
    } else {
      setStatus(answer.reload ? 'saving reloads the bot' : 'lkrun runs without reload: saving writes the file only');
    }
    if (answer.draft) offerDraft(answer.draft, answer);
  }

  function offerDraft(draft, file) {
    const when = draft.saved ? new Date(draft.saved * 1000).toLocaleString() : 'earlier';
    const newer = draft.saved && file.modified && draft.saved > file.modified;
    const note = draft.file_changed ? ' The file has changed on disk since; saving will ask which to keep.' : '';
    banner('draft', `lkrun kept changes you had not saved (${when}${newer ? ', newer than the file' : ''}).${note}`, [
      ['Restore them', 'restore', () => { ed.digest = draft.base || ed.digest; replaceText(draft.text); hideBanner(); }],
      ['Discard them', 'discard', () => {
        hideBanner();
        call('/api/draft', { bot: botId(), text: null }).then(() => { draftSent = null; })
          .catch((err) => setStatus(`could not forget the draft: ${err.message}`, 'error'));
      }],
    ]);
  }

  // ---- saving ----------------------------------------------------------------------------------------
  async function save(digest = ed.digest) {
    if (!ed.file) return;
    const contents = text();
    ui.save.disabled = true;
    setStatus('saving…');
    const started = Date.now();
    let answer;
    try {
      answer = await call('/api/save', { bot: botId(), text: contents, digest });
    } catch (err) {
      ui.save.disabled = !ed.dirty || !ed.edit;
      setStatus(`not saved: ${err.message}`, 'error');
      return;
    }
    if (answer.conflict) {
      conflict(contents, answer);
      return;
    }
    hideBanner();
    ed.loaded = contents;
    ed.digest = answer.digest;
    draftSent = null;
    changed();
    if (!answer.changed) setStatus('saved (nothing changed)', 'ok');
    else if (!ed.reload) setStatus('saved; lkrun runs without reload: restart it to run this version', 'ok');
    else if (!(ed.noticeAt >= started)) { // the reload notice can beat this answer on a busy machine
      ed.waitingReload = true;
      setStatus('saved; waiting for lkrun to reload the bot…');
    }
  }

  function conflict(mine, answer) {
    ed.conflict = { theirs: answer.theirs, digest: answer.digest };
    setStatus('the file changed on disk since you opened it: choose what to keep', 'error');
    const panes = document.createElement('div');
    panes.className = 'versions';
    for (const [title, body, cls] of [['Your version (in the editor)', mine, 'mine'], ['On disk now', answer.theirs, 'theirs']]) {
      const pane = document.createElement('div');
      pane.className = cls;
      pane.append(Object.assign(document.createElement('h3'), { textContent: title }),
        Object.assign(document.createElement('pre'), { textContent: body }));
      panes.appendChild(pane);
    }
    banner('conflict', `${ed.file} changed on disk since you opened it.`, [
      ['Keep mine (overwrite)', 'keep-mine', () => save(answer.digest)],
      ['Take theirs', 'take-theirs', () => {
        hideBanner();
        load(ed.file, answer.theirs, answer.digest);
        setStatus('took the version on disk', 'ok');
      }],
      ['Keep both', 'keep-both', async () => {
        try {
          const kept = await call('/api/keep', { bot: botId(), text: mine });
          ed.kept = kept.kept;
          hideBanner();
          load(ed.file, answer.theirs, answer.digest);
          draftSent = null;
          setStatus(`your version is kept as ${kept.kept}; the editor shows the file on disk`, 'ok');
        } catch (err) {
          setStatus(`not kept: ${err.message}`, 'error');
        }
      }],
    ], panes);
  }

  function banner(kind, message, actions, extra) {
    ui.banner.className = kind;
    ui.banner.replaceChildren(Object.assign(document.createElement('p'), { textContent: message }));
    if (extra) ui.banner.appendChild(extra);
    const row = document.createElement('div');
    row.className = 'actions';
    for (const [label, id, run] of actions) {
      const button = Object.assign(document.createElement('button'), { type: 'button', textContent: label });
      button.dataset.action = id;
      button.addEventListener('click', run);
      row.appendChild(button);
    }
    ui.banner.appendChild(row);
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    ui.banner.replaceChildren();
    ed.conflict = null;
  }

  // ---- what the page tells the editor ---------------------------------------------------------
  ui.save.addEventListener('click', () => save());
  ui.revert.addEventListener('click', () => { replaceText(ed.loaded); });
  window.addEventListener('pagehide', () => { if (ed.dirty) keepDraft({ keepalive: true }); });

  return {
    open,
    // the bot list changed (a reload, a new bot): open the selected one's file the first time
    bots(bots, selected) {
      if (!ed.file && selected) open(selected);
      else if (ed.file && !bots.some((b) => b.file === ed.file)) setStatus(`${ed.file} is no longer running`, 'error');
    },
    // a reload notice from the trace stream
    notice(item) {
      // only what happened since the file was opened (the stream replays older notices first)
      if (item.file !== ed.file || (item.time && item.time * 1000 < (ed.openedAt || 0))) return;
      const entry = state.bots.find((b) => b.file === ed.file);
      if (item.kind === 'reload') setStatus(item.message, 'ok');
      else if (item.kind === 'error' && entry && !entry.running) setStatus(`not started: ${item.message}`, 'error');
      else if (item.kind === 'error') setStatus(`still running the previous version: ${item.message}`, 'error');
      else return;
      ed.waitingReload = false;
      ed.noticeAt = Date.now();
    },
  };
}
