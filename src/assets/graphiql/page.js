// The GraphiQL page of Mission Control: a login bar, then GraphiQL with the token in its
// headers (HTTP) and in connection_init (WebSocket). Served from the binary, like every file
// the page loads.
// The token is kept under a key of our own (GraphiQL does not persist its headers) and
// handed to GraphiQL as the initial Headers, so HTTP requests carry it; the WebSocket
// puts it in its connection_init payload.
const TOKEN_KEY = 'mission-control:token';
const savedToken = () => localStorage.getItem(TOKEN_KEY) || '';
const status = document.getElementById('status');
status.textContent = savedToken() ? 'logged in: the token is in Headers' : 'not logged in: every operation needs a token';
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { password: document.getElementById('password').value };
  const username = document.getElementById('username').value.trim();
  if (username) body.username = username;
  const response = await fetch('/api/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) { status.textContent = (reply.error && reply.error.message) || 'login failed'; return; }
  localStorage.setItem(TOKEN_KEY, reply.token);
  location.reload();
});
const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws';
// `/graphql?query=...` links open with that operation in the editor.
const linked = new URLSearchParams(location.search).get('query');
const fetcher = GraphiQL.createFetcher({
  url: '/graphql',
  subscriptionUrl: wsUrl,
  wsConnectionParams: () => ({ authorization: 'Bearer ' + savedToken() }),
});
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    query: linked || undefined,
    headers: savedToken() ? JSON.stringify({ Authorization: 'Bearer ' + savedToken() }, null, 2) : undefined,
    defaultEditorToolsVisibility: 'headers',
    defaultQuery: '# Log in above, then try:\nquery Board {\n  tasks(first: 10) { totalCount edges { node { id title status priority } } }\n  agents { id label status metrics { tokens cost } }\n}\n\n# subscription Live { agentStatus { changed agents { id status } } }\n',
  }),
);
