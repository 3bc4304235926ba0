// The standard introspection query that GraphiQL, Apollo and codegen tools send must pass the
// server's depth and complexity limits (they are meant for user queries, not for tooling).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientSchema, getIntrospectionQuery } from 'graphql';
import { gql, login } from './helpers.mjs';

test('the full introspection query is answered and builds a client schema', async () => {
  const token = await login();
  const query = getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
  });
  const body = await gql(query, {}, token);
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  const schema = buildClientSchema(body.data);
  for (const name of ['Task', 'Agent', 'Activity', 'TaskEvent', 'AgentStatusEvent']) {
    assert.ok(schema.getType(name), `schema has ${name}`);
  }
  assert.ok(schema.getSubscriptionType().getFields().agentStatus);
});
