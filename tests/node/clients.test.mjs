// Real client libraries against a running Mission Control server:
// graphql-ws (graphql-transport-ws protocol), @urql/core, and a raw `ws`
// socket speaking the legacy `graphql-ws` (subscriptions-transport-ws) protocol.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Client, fetchExchange, subscriptionExchange } from '@urql/core';
import {
  CONNECT_TIMEOUT_MS,
  CREATE_TASK,
  EVENT_TIMEOUT_MS,
  EventCollector,
  GRAPHQL_URL,
  SUBSCRIBE_SETTLE_MS,
  WS_URL,
  createTask,
  createWsClient,
  deferred,
  describeClose,
  login,
  sleep,
  uniqueTitle,
  withTimeout,
} from './helpers.mjs';

const TASK_UPDATED = /* GraphQL */ `
  subscription { taskUpdated { kind taskId task { id title } } }
`;
const ACTIVITY = /* GraphQL */ `
  subscription { activity { id type actor action targetType targetId } }
`;

const TEST_TIMEOUT_MS = 30_000;

let token;
before(async () => {
  token = await login();
});

test('graphql-ws: taskUpdated delivers CREATED for a new task', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { client, connected } = createWsClient({
    connectionParams: { authorization: `Bearer ${token}` },
  });
  t.after(() => client.dispose());

  const events = new EventCollector('taskUpdated');
  const unsubscribe = client.subscribe({ query: TASK_UPDATED }, events.sink());
  t.after(unsubscribe);

  await connected();
  await sleep(SUBSCRIBE_SETTLE_MS);

  const title = uniqueTitle('graphql-ws taskUpdated');
  const task = await createTask(token, title);
  assert.equal(task.title, title);

  const data = await events.waitFor((d) => d?.taskUpdated?.taskId === task.id && d.taskUpdated.kind === 'CREATED');
  assert.equal(data.taskUpdated.kind, 'CREATED');
  assert.equal(data.taskUpdated.taskId, task.id);
  assert.ok(data.taskUpdated.task, 'CREATED event should carry the task');
  assert.equal(data.taskUpdated.task.id, task.id);
  assert.equal(data.taskUpdated.task.title, title);
});

test('graphql-ws: activity (token in connectionParams.token) reports the new task', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { client, connected } = createWsClient({ connectionParams: { token } });
  t.after(() => client.dispose());

  const events = new EventCollector('activity');
  const unsubscribe = client.subscribe({ query: ACTIVITY }, events.sink());
  t.after(unsubscribe);

  await connected();
  await sleep(SUBSCRIBE_SETTLE_MS);

  const title = uniqueTitle('graphql-ws activity');
  const task = await createTask(token, title);

  const data = await events.waitFor((d) => d?.activity?.type === 'TASK' && d.activity.targetId === task.id);
  const a = data.activity;
  assert.equal(typeof a.id, 'string');
  assert.ok(a.id.length > 0, 'activity.id should be non-empty');
  assert.equal(a.type, 'TASK');
  assert.equal(typeof a.actor, 'string');
  assert.equal(typeof a.action, 'string');
  assert.equal(a.targetId, task.id);
});

test('@urql/core: fetchExchange + subscriptionExchange over graphql-ws', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { client: wsClient, connected } = createWsClient({
    connectionParams: { authorization: `Bearer ${token}` },
  });
  t.after(() => wsClient.dispose());

  const client = new Client({
    url: GRAPHQL_URL,
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const payload = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = wsClient.subscribe(payload, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  const events = new EventCollector('urql taskUpdated');
  const subscription = client.subscription(TASK_UPDATED, {}).subscribe((result) => {
    if (result.error) events.fail(new Error(`urql subscription error: ${result.error.message}`));
    else if (result.data) events.push(result.data);
  });
  t.after(() => subscription.unsubscribe());

  await connected();
  await sleep(SUBSCRIBE_SETTLE_MS);

  const title = uniqueTitle('urql');
  const result = await withTimeout(
    client.mutation(CREATE_TASK, { i: { title } }).toPromise(),
    EVENT_TIMEOUT_MS,
    'urql createTask mutation result',
  );
  assert.ok(!result.error, `mutation failed: ${result.error?.message}`);
  const created = result.data?.createTask;
  assert.ok(created?.id, `mutation result has no id: ${JSON.stringify(result.data)}`);
  assert.equal(created.title, title);

  const data = await events.waitFor((d) => d?.taskUpdated?.taskId === created.id && d.taskUpdated.kind === 'CREATED');
  assert.equal(data.taskUpdated.task?.title, title);
});

test('graphql-ws: a bad token is closed with 4401', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const closed = deferred();
  const errors = [];
  const { client } = createWsClient({
    connectionParams: { authorization: 'Bearer nope' },
    lazy: false,
    onNonLazyError: (err) => errors.push(err),
    on: { closed: (event) => closed.resolve(event) },
  });
  t.after(() => client.dispose());

  // Also subscribe: the sink must see the failure rather than data.
  const sinkResult = deferred();
  const unsubscribe = client.subscribe(
    { query: TASK_UPDATED },
    {
      next: (value) => sinkResult.reject(new Error(`unauthenticated socket got data: ${JSON.stringify(value)}`)),
      error: (err) => sinkResult.resolve(err),
      complete: () => sinkResult.reject(new Error('unauthenticated subscription completed without an error')),
    },
  );
  t.after(unsubscribe);

  const event = await withTimeout(closed.promise, CONNECT_TIMEOUT_MS, 'the server to close the socket');
  assert.equal(event?.code, 4401, `expected close code 4401, got: ${describeClose(event)}`);

  const sinkErr = await withTimeout(sinkResult.promise, CONNECT_TIMEOUT_MS, 'the subscription sink error');
  assert.equal(sinkErr?.code, 4401, `sink error should be the 4401 close, got: ${describeClose(sinkErr)}`);
});

test('legacy graphql-ws subprotocol (subscriptions-transport-ws) delivers taskUpdated', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const ws = new WebSocket(WS_URL, 'graphql-ws');
  t.after(() => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  });

  const acked = deferred();
  const events = new EventCollector('legacy taskUpdated');
  const send = (msg) => ws.send(JSON.stringify(msg));

  ws.on('error', (err) => {
    acked.reject(new Error(`legacy socket: ${err.message}`));
    events.fail(new Error(`legacy socket: ${err.message}`));
  });
  ws.on('close', (code, reason) => {
    const err = new Error(`legacy socket closed with code ${code}${reason?.length ? ` (${reason})` : ''}`);
    acked.reject(err);
    events.fail(err);
  });
  ws.on('open', () => {
    send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  });
  ws.on('message', (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw.toString());
    } catch {
      events.fail(new Error(`legacy socket sent non-JSON: ${raw.toString().slice(0, 200)}`));
      return;
    }
    switch (msg.type) {
      case 'connection_ack':
        acked.resolve();
        break;
      case 'ka':
        break;
      case 'connection_error':
        acked.reject(new Error(`connection_error: ${JSON.stringify(msg.payload)}`));
        break;
      case 'data':
        if (msg.payload?.errors?.length) events.fail(new Error(`GraphQL errors: ${JSON.stringify(msg.payload.errors)}`));
        else events.push(msg.payload?.data);
        break;
      case 'error':
        events.fail(new Error(`subscription error: ${JSON.stringify(msg.payload)}`));
        break;
      case 'complete':
        events.fail(new Error('subscription completed before the expected event'));
        break;
      default:
        break;
    }
  });

  await withTimeout(acked.promise, CONNECT_TIMEOUT_MS, 'legacy connection_ack');
  assert.equal(ws.protocol, 'graphql-ws', 'server should select the legacy graphql-ws subprotocol');

  send({ id: '1', type: 'start', payload: { query: TASK_UPDATED } });
  await sleep(SUBSCRIBE_SETTLE_MS);

  const title = uniqueTitle('legacy graphql-ws');
  const task = await createTask(token, title);
  const data = await events.waitFor((d) => d?.taskUpdated?.taskId === task.id && d.taskUpdated.kind === 'CREATED');
  assert.equal(data.taskUpdated.task?.title, title);

  send({ id: '1', type: 'stop' });
  send({ type: 'connection_terminate' });
  ws.close(1000);
});
