// GraphQL-over-HTTP conformance: runs graphql-http's server audit suite
// against /graphql (authenticated). MUST failures fail the test; SHOULD/MAY
// failures are only reported. Set AUDIT_REPORT=path.md to get a markdown table.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { auditServer } from 'graphql-http';
import { GRAPHQL_URL, REQUEST_TIMEOUT_MS, login } from './helpers.mjs';

const ICON = { ok: 'ok   ', notice: 'note ', warn: 'warn ', error: 'error' };

function mdCell(value) {
  return String(value ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n/g, '<br>');
}

function markdownReport(results) {
  const count = (s) => results.filter((r) => r.status === s).length;
  const lines = [
    '# GraphQL over HTTP audit (graphql-http)',
    '',
    `Target: \`${GRAPHQL_URL}\` — ${results.length} audits: ` +
      `${count('ok')} ok, ${count('error')} error (MUST), ${count('warn')} warn (SHOULD), ${count('notice')} notice (MAY)`,
    '',
    '| Status | ID | Audit | HTTP status | Reason |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.status} | ${r.id} | ${mdCell(r.name)} | ${r.status === 'ok' ? '' : (r.response?.status ?? '')} | ${mdCell(r.reason)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

test('graphql-http server audit: no MUST failures', { timeout: 120_000 }, async () => {
  const token = await login();

  // Every audit request goes through this, so the server sees an authenticated client.
  const fetchFn = (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(input, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  };

  const results = await auditServer({ url: GRAPHQL_URL, fetchFn });
  assert.ok(results.length > 0, 'auditServer returned no results');

  for (const r of results) {
    console.log(`${ICON[r.status] ?? r.status} ${r.id} ${r.name}${r.status === 'ok' ? '' : ` — ${r.reason}`}`);
  }

  if (process.env.AUDIT_REPORT) {
    await writeFile(process.env.AUDIT_REPORT, markdownReport(results));
    console.log(`audit report written to ${process.env.AUDIT_REPORT}`);
  }

  const errors = results.filter((r) => r.status === 'error');
  const warnings = results.filter((r) => r.status === 'warn');
  console.log(
    `${results.length} audits: ${results.length - errors.length - warnings.length} ok/notice, ` +
      `${warnings.length} warn (SHOULD), ${errors.length} error (MUST)`,
  );

  assert.equal(
    errors.length,
    0,
    `MUST audits failed:\n${errors.map((r) => `  ${r.id} ${r.name}: ${r.reason}`).join('\n')}`,
  );
});
