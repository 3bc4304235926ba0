// The Mission Control page (web/, served at `/`) in a real browser (headless Chromium),
// against a server started with `--demo` (simulated agents, sample tasks). Two browser
// contexts log in separately; what one does, the other sees live, with no reload. Every
// request to another host is refused and recorded (there must be none), and so is every page
// error and CSP violation.
//
// Environment: MC_DEMO_URL (the demo server; the test skips without it), MC_DEMO_PASSWORD
// (its MC_PASSWORD, default admin123), MC_ARTIFACTS (where screenshots of a failure go,
// default the OS temporary folder), CHROMIUM_PATH (default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BROWSER = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const DEMO_URL = (process.env.MC_DEMO_URL || '').replace(/\/+$/, '');
const PASSWORD = process.env.MC_DEMO_PASSWORD ?? 'admin123';
const ARTIFACTS = process.env.MC_ARTIFACTS || os.tmpdir();
/** Every wait: long, for a loaded 2-core machine. Waits end as soon as the page is ready. */
const WAIT = 30_000;

const unique = (label) => `page-test ${label} ${Date.now()}-${Math.random().toString(36).slice(2, 7)}`;

/** A browser context with its own login, watched for errors, other hosts and CSP violations. */
async function openContext(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const seen = { name, page, errors: [], outside: [], csp: [] };
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) seen.csp.push(m.text());
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${DEMO_URL}/`) || url === DEMO_URL) return route.continue();
    seen.outside.push(url);
    return route.abort('internetdisconnected');
  });
  return seen;
}

async function logIn(page) {
  await page.goto(`${DEMO_URL}/`);
  await page.waitForSelector('[data-testid=login-form]', { timeout: WAIT });
  await page.fill('[data-testid=login-password]', PASSWORD);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=board][data-ready=true], [data-testid=login-error]', { timeout: WAIT });
  const refused = await page.$('[data-testid=login-error]');
  if (refused) throw new Error(`login refused: ${await refused.textContent()} (check MC_DEMO_PASSWORD)`);
  await page.waitForSelector('[data-testid=board][data-ready=true]', { timeout: WAIT });
  await page.waitForSelector('[data-testid=connection][data-state=connected]', { timeout: WAIT });
  await page.waitForSelector('[data-testid=whoami]', { timeout: WAIT });
}

const card = (id) => `[data-testid=task-card][data-task-id="${id}"]`;
const inColumn = (status, id) => `[data-testid=column][data-status=${status}] ${card(id)}`;

test('the page: board, live updates between two logins, feed, agents, logout', { timeout: 300_000 }, async (t) => {
  if (!DEMO_URL) {
    const why = 'MC_DEMO_URL is not set (the URL of a server started with --demo)';
    console.log(`page.test.mjs skipped: ${why}`);
    t.skip(why);
    return;
  }
  if (!existsSync(BROWSER)) {
    const why = `no Chromium at ${BROWSER} (apt-get install chromium, or set CHROMIUM_PATH)`;
    console.log(`page.test.mjs skipped: ${why}`);
    t.skip(why);
    return;
  }
  const browser = await chromium.launch({
    executablePath: BROWSER,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const a = await openContext(browser, 'first');
  const b = await openContext(browser, 'second');

  try {
    // Both log in through the form, each with its own token.
    await logIn(a.page);
    await logIn(b.page);
    const stored = await a.page.evaluate(() => ({
      local: localStorage.length,
      session: Object.keys(sessionStorage),
      url: location.href,
    }));
    assert.equal(stored.local, 0, 'nothing in localStorage');
    assert.ok(stored.session.length > 0, 'the session is kept in sessionStorage');
    assert.ok(!/token|eyJ/.test(stored.url), `no token in the URL: ${stored.url}`);

    // The demo's sample tasks and agents.
    await a.page.waitForSelector('[data-testid=task-card]:has-text("Survey vector databases")', { timeout: WAIT });
    await a.page.click('[data-testid=tab-agents]');
    for (const label of ['researcher', 'reviewer', 'writer']) {
      await a.page.waitForSelector(`[data-testid=agent-row][data-label="${label}"]`, { timeout: WAIT });
    }
    await a.page.click('[data-testid=tab-board]');
    await a.page.waitForSelector('[data-testid=board][data-ready=true]', { timeout: WAIT });

    // A task made in the first context shows in the second, without a reload.
    const title = unique('task');
    await a.page.click('[data-testid=new-task]');
    await a.page.waitForSelector('[data-testid=task-form]', { timeout: WAIT });
    await a.page.fill('[data-testid=task-title]', title);
    await a.page.selectOption('[data-testid=task-priority]', 'HIGH');
    await a.page.fill('[data-testid=task-tags]', 'page-test, browser');
    await a.page.click('[data-testid=task-save]');
    const created = await a.page.waitForSelector(`[data-testid=task-card]:has-text("${title}")`, { timeout: WAIT });
    const id = await created.getAttribute('data-task-id');
    assert.ok(id, 'the card carries its task id');
    await a.page.waitForSelector(inColumn('TODO', id), { timeout: WAIT });
    await b.page.waitForSelector(inColumn('TODO', id), { timeout: WAIT });
    assert.match(await b.page.textContent(card(id)), /High/);

    // Moved in the first, it moves in the second.
    await a.page.selectOption(`${card(id)} [data-testid=task-move]`, 'IN_PROGRESS');
    await a.page.waitForSelector(inColumn('IN_PROGRESS', id), { timeout: WAIT });
    await b.page.waitForSelector(inColumn('IN_PROGRESS', id), { timeout: WAIT });
    await b.page.waitForSelector(inColumn('TODO', id), { state: 'detached', timeout: WAIT });

    // The feed has its creation and its move.
    await a.page.click('[data-testid=tab-feed]');
    await a.page.waitForSelector('[data-testid=feed][data-ready=true]', { timeout: WAIT });
    await a.page.waitForFunction(
      (target) => {
        const rows = [...document.querySelectorAll(`[data-testid=activity][data-target-id="${target}"]`)];
        return rows.some((r) => /created task/.test(r.textContent)) && rows.some((r) => /moved/.test(r.textContent));
      },
      id,
      { timeout: WAIT },
    );

    // Spawn a simulated agent, then kill it through the page's confirmation.
    const label = unique('agent');
    await a.page.click('[data-testid=tab-agents]');
    await a.page.click('[data-testid=spawn-open]');
    await a.page.waitForSelector('[data-testid=spawn-dialog]', { timeout: WAIT });
    await a.page.fill('[data-testid=spawn-label]', label);
    await a.page.fill('[data-testid=spawn-task]', 'Say hello from the browser test.');
    await a.page.click('[data-testid=spawn-submit]');
    const row = `[data-testid=agent-row][data-label="${label}"]`;
    await a.page.waitForSelector(row, { timeout: WAIT });
    await a.page.click(`${row} [data-testid=agent-kill]`);
    await a.page.waitForSelector('[data-testid=confirm-dialog]', { timeout: WAIT });
    await a.page.click('[data-testid=confirm-ok]');
    await a.page.waitForSelector(`${row}[data-status=KILLED]`, { timeout: WAIT });
    // The second context saw it live, from agentStatus.
    await b.page.click('[data-testid=tab-agents]');
    await b.page.waitForSelector(`${row}[data-status=KILLED]`, { timeout: WAIT });

    // Log out: back to the login form, the session gone from storage.
    await a.page.click('[data-testid=logout]');
    await a.page.waitForSelector('[data-testid=login-form]', { timeout: WAIT });
    assert.match(await a.page.textContent('[data-testid=login-notice]'), /logged out/i);
    assert.equal(await a.page.evaluate(() => sessionStorage.length), 0);

    for (const seen of [a, b]) {
      assert.deepEqual(seen.errors, [], `${seen.name} context: no page errors`);
      assert.deepEqual(seen.outside, [], `${seen.name} context: the page asks no other host for anything`);
      assert.deepEqual(seen.csp, [], `${seen.name} context: and breaks none of its CSP`);
    }
  } catch (error) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const stamp = Date.now();
    for (const seen of [a, b]) {
      const file = path.join(ARTIFACTS, `page-test-${seen.name}-${stamp}.png`);
      try {
        await seen.page.screenshot({ path: file, fullPage: true });
        console.error(`page.test.mjs: screenshot of the ${seen.name} context: ${file}`);
      } catch (e) {
        console.error(`page.test.mjs: no screenshot of the ${seen.name} context: ${e}`);
      }
      if (seen.errors.length || seen.outside.length || seen.csp.length) {
        console.error(`page.test.mjs: ${seen.name} context saw`, JSON.stringify({ errors: seen.errors, outside: seen.outside, csp: seen.csp }));
      }
    }
    throw error;
  }
});
