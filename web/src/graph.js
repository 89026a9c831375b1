// The flow graph of the picked bot (bots with `flow:`), drawn with Mermaid, the current node
// highlighted. lkrun makes the diagram's text (runner/botfile/flow_graph.py, as `lkrun graph`
// prints it) with the node the bot is in; the page asks again when a node_entered (or a flow
// node's on_enter) run shows up in the trace, after a reload, and every few seconds.
//
// Under the page's Content-Security-Policy (style-src 'self') the SVG's <style> element and style
// attributes would be dropped: its rules go into a constructed stylesheet and its style
// attributes through the CSSOM, which the policy allows.
const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;

export function createGraph(state) {
  const ui = { panel: $('graph-panel'), host: $('graph'), node: $('graph-node') };
  const graph = { bot: null, text: null, current: null, renders: 0, error: null, flow: false };
  state.graph = graph;
  let loading = null;
  let timer = null;
  let sheet = null;

  function renderer() {
    if (window.lkrunMermaid) return Promise.resolve(window.lkrunMermaid);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = '/static/dist/mermaid.js';
        script.onload = () => (window.lkrunMermaid ? resolve(window.lkrunMermaid) : reject(new Error('no mermaid')));
        script.onerror = () => { loading = null; reject(new Error('cannot load /static/dist/mermaid.js')); };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  function adopt(svgText) {
    const parsed = new DOMParser().parseFromString(svgText, 'image/svg+xml');
    const svg = parsed.documentElement;
    let css = '';
    for (const style of [...svg.querySelectorAll('style')]) {
      css += style.textContent + '\n';
      style.remove();
    }
    const styled = [...svg.querySelectorAll('[style]')].map((el) => [el, el.getAttribute('style')]);
    for (const [el] of styled) el.removeAttribute('style');
    const rootStyle = svg.getAttribute('style');
    svg.removeAttribute('style');
    const node = document.importNode(svg, true);
    // the same elements in the imported copy, in document order
    const imported = [...node.querySelectorAll('*')];
    const original = [...svg.querySelectorAll('*')];
    const index = new Map(original.map((el, i) => [el, i]));
    for (const [el, value] of styled) imported[index.get(el)].style.cssText = value;
    if (rootStyle) node.style.cssText = rootStyle;
    if ('adoptedStyleSheets' in Document.prototype) {
      if (!sheet) {
        sheet = new CSSStyleSheet();
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      sheet.replaceSync(css);
    }
    return node;
  }

  async function draw(answer) {
    const mermaid = await renderer();
    graph.renders += 1;
    const { svg } = await mermaid.render(`lkrun-graph-${graph.renders}`, answer.mermaid);
    ui.host.replaceChildren(adopt(svg));
    graph.text = answer.mermaid;
    graph.current = answer.current;
    ui.node.textContent = answer.current ? `now in: ${answer.current}` : 'not started yet';
    ui.host.dataset.current = answer.current || '';
  }

  async function refresh() {
    const bot = graph.bot;
    if (!bot) return;
    let answer;
    try {
      const response = await fetch('/api/graph?bot=' + encodeURIComponent(bot), { cache: 'no-store' });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
    } catch (err) {
      graph.error = err.message;
      return;
    }
    if (bot !== graph.bot) return;
    graph.flow = Boolean(answer.mermaid);
    ui.panel.hidden = !graph.flow;
    if (!graph.flow || (answer.mermaid === graph.text && answer.current === graph.current)) return;
    try {
      await draw(answer);
      graph.error = null;
    } catch (err) {
      graph.error = `cannot draw the flow: ${err.message}`;
      ui.node.textContent = graph.error;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => { await refresh(); if (graph.flow) schedule(); }, POLL_MS);
  }

  return {
    // the picked bot changed (or the list did): draw its flow, if it has one
    async show(botId) {
      if (botId === graph.bot) return;
      graph.bot = botId;
      graph.text = graph.current = null;
      graph.flow = false;
      ui.panel.hidden = true;
      ui.host.replaceChildren();
      await refresh();
      if (graph.flow) schedule();
    },
    // a trace entry or notice: a node was entered, or the file reloaded
    seen(item) {
      const nodeRun = item.type === 'trace' && (item.event === 'node_entered' || String(item.event).startsWith('flow:'));
      if (graph.bot && (nodeRun || item.type === 'notice')) refresh().then(() => { if (graph.flow) schedule(); });
    },
  };
}
