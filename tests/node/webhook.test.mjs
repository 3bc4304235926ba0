// A webhook receiver in Node verifies deliveries with the README's `verify` function (kept
// here word for word): the signature and timestamp check out, a tampered body does not.
// The server must allow private receivers (MC_WEBHOOK_ALLOW_PRIVATE=true, as .ci/run sets).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { createTask, gql, login, uniqueTitle } from './helpers.mjs';

// --- from the README (its `require` is this file's `import`) ---
function verify(secret, headers, rawBody) {
  const ts = headers["x-mc-timestamp"];
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;            // replayed?
  const mac = crypto.createHmac("sha256", secret).update(`${ts}.${rawBody}`).digest("hex");
  const given = Buffer.from(headers["x-mc-signature"] || "");
  const wanted = Buffer.from(`sha256=${mac}`);
  return given.length === wanted.length && crypto.timingSafeEqual(given, wanted);
}
// --- end ---

test('a Node receiver verifies a signed delivery with the README example', { timeout: 30_000 }, async () => {
  const got = [];
  let arrived;
  const first = new Promise((resolve) => { arrived = resolve; });
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
      arrived();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const token = await login();
    const url = `http://127.0.0.1:${server.address().port}/hook`;
    const created = await gql(
      'mutation($i: WebhookInput!) { createWebhook(input: $i) { secret webhook { id } } }',
      { i: { url, events: ['task.created'] } },
      token,
    );
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    const { secret, webhook } = created.data.createWebhook;
    const title = uniqueTitle('webhook');
    const task = await createTask(token, title);
    await first;
    const delivery = got[0];
    assert.ok(verify(secret, delivery.headers, delivery.body), 'the README check accepts it');
    assert.ok(!verify(secret, delivery.headers, delivery.body.replace(title, 'tampered')), 'a changed body fails');
    assert.ok(!verify('whsec_wrong', delivery.headers, delivery.body), 'another secret fails');
    const body = JSON.parse(delivery.body);
    assert.equal(body.event, 'task.created');
    assert.equal(body.data.id, task.id);
    assert.equal(delivery.headers['x-mc-delivery'], body.id);
    await gql('mutation($id: ID!) { deleteWebhook(id: $id) }', { id: webhook.id }, token);
  } finally {
    server.close();
  }
});
