// Tries the agent features on a real gateway through Mission Control, timing each action.
// Needs Node 22+ (a global WebSocket): the gateway harness's Node 24 will do.
//   source ~/.cache/mc-gateways/openclaw/env.sh     # after ../shared/gateways/openclaw/setup.sh
//   cargo run --release &                            # no agent flags: it finds the gateway
//   MC=http://127.0.0.1:3001 "$OC_NODE" docs/try-real-gateway.mjs
// For Clawdbot, source its env.sh and set OPENCLAW_BIN=$CLAWDBOT_BIN (the approval asker).
const BASE = process.env.MC || 'http://127.0.0.1:3001';
const t0 = () => performance.now();
const login = await (await fetch(`${BASE}/api/auth/login`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({password: process.env.MC_PASSWORD || 'admin123'})})).json();
const token = login.token;
async function gql(query, variables = {}) {
  const s = t0();
  const r = await fetch(`${BASE}/graphql`, {method: 'POST', headers: {'content-type': 'application/json', authorization: `Bearer ${token}`}, body: JSON.stringify({query, variables})});
  const body = await r.json();
  return [body, (t0() - s).toFixed(1)];
}
function subscribe(query, variables, onData) {
  const ws = new WebSocket(BASE.replace('http', 'ws') + '/graphql/ws', 'graphql-transport-ws');
  ws.onopen = () => ws.send(JSON.stringify({type: 'connection_init', payload: {authorization: `Bearer ${token}`}}));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'connection_ack') ws.send(JSON.stringify({id: '1', type: 'subscribe', payload: {query, variables}}));
    if (msg.type === 'next') onData(msg.payload.data);
  };
  return ws;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(id, pred, what) {
  const s = t0();
  for (;;) {
    const [b] = await gql('query($id: ID!) { agent(id: $id) { id status runtimeStatus model metrics { tokens cost } } }', {id});
    if (b.data?.agent && pred(b.data.agent)) return [b.data.agent, (t0() - s).toFixed(0)];
    if (t0() - s > 60000) throw new Error(`${what}: ${JSON.stringify(b)}`);
    await sleep(50);
  }
}
const [sp, spMs] = await gql('mutation { spawnAgent(input: {label: "real", task: "Write a haiku about lobsters"}) { id status } }');
console.log('spawnAgent', spMs, 'ms', JSON.stringify(sp));
const id = sp.data.spawnAgent.id;
const outputs = [];
const ows = subscribe('subscription($id: ID!) { agentOutput(id: $id) { kind text runId } }', {id}, (d) => outputs.push(d.agentOutput));
const [done, doneMs] = await until(id, (a) => a.status === 'DONE', 'done');
console.log('DONE after', doneMs, 'ms', JSON.stringify(done));
await sleep(500);
const [msg, msgMs] = await gql('mutation($id: ID!) { sendAgentMessage(id: $id, message: "Another one") }', {id});
console.log('sendAgentMessage', msgMs, 'ms', JSON.stringify(msg));
const [done2, done2Ms] = await until(id, (a) => a.status === 'DONE' && a.metrics.cost > 0.009, 'done2');
console.log('second run DONE after', done2Ms, 'ms', JSON.stringify(done2));
await sleep(300);
console.log('agentOutput items of the second run:', JSON.stringify(outputs));
const [tr, trMs] = await gql('query($id: ID!) { agent(id: $id) { transcript(limit: 10) { role text cost } } }', {id});
console.log('transcript', trMs, 'ms', JSON.stringify(tr));
await gql('mutation($id: ID!) { sendAgentMessage(id: $id, message: "SLOW please") }', {id});
await sleep(1500);
const [k, kMs] = await gql('mutation($id: ID!) { killAgent(id: $id) { status runtimeStatus } }', {id});
console.log('killAgent', kMs, 'ms', JSON.stringify(k));
const [killed, killedMs] = await until(id, (a) => a.status === 'KILLED', 'killed');
console.log('store says killed after', killedMs, 'ms', JSON.stringify(killed));
ows.close();
// Approvals: a host asks through the gateway CLI; we list, subscribe and decide here.
const seen = [];
const aws = subscribe('subscription { approvals { id status command decision decidedBy } }', {}, (d) => seen.push(d.approvals));
await sleep(500);
const { spawn } = await import('node:child_process');
const asker = spawn(process.env.OPENCLAW_BIN, ['gateway', 'call', 'exec.approval.request', '--params', JSON.stringify({command: 'rm -rf ./build', cwd: '/tmp', agentId: 'main', sessionKey: id, timeoutMs: 60000}), '--json', '--timeout', '70000'], {env: process.env});
const askerDone = new Promise((r) => asker.on('close', r));
let out = ''; asker.stdout.on('data', (d) => out += d); asker.stderr.on('data', (d) => out += d);
const s = t0();
let pending;
for (;;) {
  const [b] = await gql('{ approvals(status: PENDING) { id command cwd agentId status expiresAt } }');
  if (b.data.approvals.length) { pending = b.data.approvals[0]; break; }
  if (t0() - s > 30000) throw new Error('no approval: ' + out);
  await sleep(50);
}
console.log('approval listed after', (t0() - s).toFixed(0), 'ms', JSON.stringify(pending));
const [res, resMs] = await gql('mutation($id: ID!) { resolveApproval(id: $id, decision: ALLOW_ONCE) { id status decision decidedBy } }', {id: pending.id});
console.log('resolveApproval', resMs, 'ms', JSON.stringify(res));
const askS = t0(); await askerDone; console.log('asker exited', (t0() - askS).toFixed(0), 'ms after the decision');
console.log('the asker got:', out.trim().slice(-300));
await sleep(300);
console.log('approvals subscription saw:', JSON.stringify(seen));
const [feed] = await gql('{ feed(first: 10) { edges { node { action actor targetId } } } }');
console.log('feed', JSON.stringify(feed.data.feed.edges.map((e) => e.node)));
aws.close();
process.exit(0);
