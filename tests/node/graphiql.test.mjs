// GraphiQL in a real browser (headless Chromium) with the network off: every request that is
// not to the server is refused (and recorded: there must be none). Log in with the page's bar,
// then run a subscription from the editor and see a live event arrive over the WebSocket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { MC_PASSWORD, MC_URL, createTask, login, uniqueTitle } from './helpers.mjs';

const BROWSER = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

test('GraphiQL: log in from the page and receive a subscription event', { timeout: 60_000 }, async (t) => {
  if (!existsSync(BROWSER)) {
    t.skip(`no Chromium at ${BROWSER} (apt-get install chromium, or set CHROMIUM_PATH)`);
    return;
  }
  const browser = await chromium.launch({
    executablePath: BROWSER,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  const outside = [];
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(MC_URL)) return route.continue();
    outside.push(url);
    return route.abort('internetdisconnected');
  });
  const cspViolations = [];
  page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) cspViolations.push(m.text()); });

  await page.goto(`${MC_URL}/graphql`);
  await page.fill('#password', MC_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('#login button[type=submit]')]);
  await page.waitForSelector('.graphiql-container', { timeout: 20_000 });
  assert.match(await page.textContent("#status"), /logged in/);

  const subscription = 'subscription { taskUpdated { kind task { title } } }';
  await page.goto(`${MC_URL}/graphql?query=${encodeURIComponent(subscription)}`);
  await page.waitForSelector('.graphiql-execute-button', { timeout: 20_000 });
  await page.click('.graphiql-execute-button');
  await page.waitForTimeout(1000); // the socket opens and subscribes

  const title = uniqueTitle('graphiql');
  await createTask(await login(), title);
  await page.waitForFunction(
    (expected) => document.querySelector('.graphiql-response')?.textContent.includes(expected),
    title,
    { timeout: 15_000 },
  );
  const shown = await page.textContent('.graphiql-response');
  assert.match(shown, /CREATED/);
  assert.deepEqual(problems, []);
  assert.deepEqual(outside, [], 'the page asks no other host for anything');
  assert.deepEqual(cspViolations, [], 'and breaks none of its CSP');
});
