// Bundle the playground page into runner/playground/static/dist/ (git-ignored).
// Run with `npm run build` after `npm ci`; nothing is fetched at run time.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'runner', 'playground', 'static', 'dist');
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.js')],
  outfile: join(outdir, 'playground.js'),
  bundle: true,
  format: 'iife',
  target: ['es2020'],
  minify: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
console.log(`built ${join(outdir, 'playground.js')}`);
