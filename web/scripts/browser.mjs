// A headless Chromium for the Python tests, driven by JSON lines on stdin/stdout.
//
//   node web/scripts/browser.mjs [--wav FILE]      (CHROMIUM=/path overrides the browser)
//
// Each input line is {"id": N, "op": NAME, ...}; each answer is {"id": N, "ok": true, "value": ...}
// or {"id": N, "ok": false, "error": "..."}. Browser console lines come as {"console": "..."}.
// Debian's chromium (apt-get install chromium) and playwright-core (no browser download).
// --use-file-for-fake-audio-capture makes the WAV the microphone, looped.
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const wav = args.includes('--wav') ? args[args.indexOf('--wav') + 1] : null;
const candidates = [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium',
  '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean);
const executablePath = candidates.find((p) => existsSync(p));
if (!executablePath) {
  console.error('no Chromium found: apt-get install chromium (or set CHROMIUM=/path/to/chrome)');
  process.exit(2);
}

const flags = ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required', '--no-sandbox', '--disable-dev-shm-usage'];
if (wav) flags.push(`--use-file-for-fake-audio-capture=${wav}`);
const browser = await chromium.launch({ executablePath, headless: true, args: flags });
const context = await browser.newContext({ viewport: { width: 1280, height: 760 }, deviceScaleFactor: 1 });
const page = await context.newPage();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
page.on('console', (m) => out({ console: `${m.type()}: ${m.text()}` }));
page.on('pageerror', (e) => out({ console: `pageerror: ${e.message}` }));

const ops = {
  goto: ({ url }) => page.goto(url).then((r) => r && r.status()),
  click: ({ selector }) => page.click(selector),
  fill: ({ selector, text }) => page.fill(selector, text),
  type: ({ selector, text, delay }) => page.locator(selector).pressSequentially(text, { delay: delay ?? 20 }),
  press: ({ selector, key }) => page.press(selector, key),
  select: ({ selector, value }) => page.selectOption(selector, value).then(() => null),
  text: ({ selector }) => page.textContent(selector),
  wait: ({ selector, text, timeout }) => page.locator(selector).filter(text ? { hasText: text } : {})
    .first().waitFor({ timeout: timeout ?? 15000 }).then(() => null),
  // polled page.evaluate, not page.waitForFunction: the page's CSP forbids the eval() that uses
  waitFunction: async ({ expr, timeout }) => {
    const deadline = Date.now() + (timeout ?? 15000);
    for (;;) {
      const value = await page.evaluate(expr);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout ?? 15000} ms waiting for ${expr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  },
  eval: ({ expr }) => page.evaluate(expr),
  move: ({ x, y }) => page.mouse.move(x, y).then(() => null),
  screenshot: ({ path, fullPage }) => page.screenshot({ path, fullPage: !!fullPage }).then(() => path),
  close: async () => { await browser.close(); setTimeout(() => process.exit(0), 10); return null; },
};

out({ ready: true, browser: browser.version() });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let request;
  try { request = JSON.parse(line); } catch (err) { out({ ok: false, error: `bad JSON: ${err.message}` }); continue; }
  const op = ops[request.op];
  if (!op) { out({ id: request.id, ok: false, error: `unknown op ${request.op}` }); continue; }
  try {
    out({ id: request.id, ok: true, value: (await op(request)) ?? null });
  } catch (err) {
    out({ id: request.id, ok: false, error: String(err && err.message || err) });
  }
}
await browser.close();
