// The Mermaid renderer, bundled on its own (dist/mermaid.js, about 3 MB) and loaded by graph.js
// only when a bot has a flow: the page itself stays small.
import mermaid from 'mermaid';

mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'neutral', flowchart: { htmlLabels: false } });
window.lkrunMermaid = mermaid;
