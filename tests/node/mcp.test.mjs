// The board over MCP with the official TypeScript SDK (@modelcontextprotocol/sdk): an agent
// with an API key lists the tools, claims a task, comments and completes it, and a GraphQL
// subscriber sees each step live.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CREATE_TASK,
  EventCollector,
  MC_URL,
  SUBSCRIBE_SETTLE_MS,
  createWsClient,
  gql,
  login,
  sleep,
  uniqueTitle,
} from './helpers.mjs';

const TEST_TIMEOUT_MS = 30_000;
const CREATE_KEY = /* GraphQL */ `
  mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }
`;
const TASK_UPDATED = /* GraphQL */ `
  subscription($id: ID) { taskUpdated(taskId: $id) { task { status claimedBy commentCount } } }
`;

let token;
before(async () => {
  token = await login();
});

async function mcpClient(credential) {
  const transport = new StreamableHTTPClientTransport(new URL(`${MC_URL}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${credential}` } },
  });
  const client = new Client({ name: 'mission-control-ci', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

test('MCP SDK: an agent claims, comments and completes a task; GraphQL sees it live', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const tag = `mcp-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const created = await gql(CREATE_TASK, { i: { title: uniqueTitle('mcp'), tags: [tag], priority: 'HIGH' } }, token);
  const id = created.data.createTask.id;
  const keyBody = await gql(CREATE_KEY, { i: { name: 'node-mcp-agent', role: 'OPERATOR' } }, token);
  assert.ok(keyBody.data?.createApiKey?.key, JSON.stringify(keyBody));
  const key = keyBody.data.createApiKey.key;

  const { client: ws, connected } = createWsClient({ connectionParams: { authorization: `Bearer ${token}` } });
  t.after(() => ws.dispose());
  const events = new EventCollector('taskUpdated');
  t.after(ws.subscribe({ query: TASK_UPDATED, variables: { id } }, events.sink()));
  await connected();
  await sleep(SUBSCRIBE_SETTLE_MS);

  const mcp = await mcpClient(key);
  t.after(() => mcp.close());
  assert.equal(mcp.getServerVersion()?.name, 'mission-control');
  const { tools } = await mcp.listTools();
  const names = tools.map((tool) => tool.name).sort();
  for (const name of ['claim_task', 'comment_task', 'complete_task', 'create_task', 'get_task', 'heartbeat_task', 'list_tasks']) {
    assert.ok(names.includes(name), `${name} in ${names}`);
  }

  const claimed = await mcp.callTool({ name: 'claim_task', arguments: { tag, leaseSeconds: 60 } });
  assert.equal(claimed.isError, false, JSON.stringify(claimed));
  assert.equal(claimed.structuredContent.task.id, id);
  await events.waitFor((d) => d?.taskUpdated?.task?.claimedBy === 'node-mcp-agent');

  const commented = await mcp.callTool({ name: 'comment_task', arguments: { id, content: 'working on it' } });
  assert.equal(commented.structuredContent.author, 'node-mcp-agent');
  await events.waitFor((d) => d?.taskUpdated?.task?.commentCount === 1);

  const done = await mcp.callTool({ name: 'complete_task', arguments: { id, status: 'DONE', result: 'done from MCP' } });
  assert.equal(done.structuredContent.status, 'DONE', JSON.stringify(done));
  await events.waitFor((d) => d?.taskUpdated?.task?.status === 'DONE' && d.taskUpdated.task.claimedBy === null);

  // A refusal is a tool error carrying its code; a bad argument a JSON-RPC error.
  const refused = await mcp.callTool({ name: 'heartbeat_task', arguments: { id } });
  assert.equal(refused.isError, true);
  assert.equal(refused.structuredContent.code, 'FORBIDDEN');
  await assert.rejects(mcp.callTool({ name: 'claim_task', arguments: { leaseSeconds: 5 } }), /leaseSeconds/);

  const seen = await gql('query($id: ID!) { task(id: $id) { status comments { author content } runs { status result } } }', { id }, token);
  assert.deepEqual(seen.data.task.comments.map((c) => c.content), ['working on it', 'done from MCP']);
  assert.deepEqual(seen.data.task.runs, [{ status: 'DONE', result: 'done from MCP' }]);
});
