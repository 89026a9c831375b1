// Bundle the playground page into runner/playground/static/dist/ (git-ignored).
// Run with `npm run build` after `npm ci`; nothing is fetched at run time.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'runner', 'playground', 'static', 'dist');
mkdirSync(outdir, { recursive: true });

const common = { bundle: true, format: 'iife', target: ['es2020'], minify: true, legalComments: 'linked', logLevel: 'warning' };
await build({ ...common, entryPoints: [join(here, 'src', 'main.js')], outfile: join(outdir, 'playground.js') });
console.log(`built ${join(outdir, 'playground.js')}`);
// Mermaid (the flow graph) on its own: the page loads it only for a bot with a flow
await build({ ...common, entryPoints: [join(here, 'src', 'mermaid-entry.js')], outfile: join(outdir, 'mermaid.js') });
console.log(`built ${join(outdir, 'mermaid.js')}`);
