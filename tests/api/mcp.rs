//! The board over MCP (`POST /mcp`, streamable HTTP), spoken as JSON-RPC on the wire the way
//! an MCP client does; `.ci/run` also drives it with the official TypeScript SDK.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::work::{operator_key, task};

/// One MCP client: a bearer credential and a request counter.
struct Mcp<'a> {
    app: &'a TestApp,
    credential: Option<String>,
    id: u64,
}

impl<'a> Mcp<'a> {
    fn new(app: &'a TestApp, credential: Option<&str>) -> Self {
        Mcp { app, credential: credential.map(str::to_owned), id: 0 }
    }

    async fn post(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .app
            .client
            .post(format!("{}/mcp", self.app.address))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(c) = &self.credential {
            request = request.bearer_auth(c);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A request and its JSON-RPC answer (a `result` or an `error`).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let (status, _, body) =
            self.post(json!({ "jsonrpc": "2.0", "id": self.id, "method": method, "params": params })).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(body["id"], self.id, "{body}");
        body
    }

    async fn initialize(&mut self) -> Value {
        let params = json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } });
        let answer = self.call("initialize", params).await;
        let (status, _, _) = self.post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
        assert_eq!(status, 202, "a notification is accepted");
        answer
    }

    /// `tools/call`; the JSON-RPC answer.
    async fn tool(&mut self, name: &str, arguments: Value) -> Value {
        self.call("tools/call", json!({ "name": name, "arguments": arguments })).await
    }

    /// A tool call that succeeded: its structured content.
    async fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self.tool(name, arguments).await;
        let result = &answer["result"];
        assert_eq!(result["isError"], false, "{name}: {answer}");
        result["structuredContent"].clone()
    }
}

#[tokio::test]
async fn an_agent_works_the_board_over_mcp_and_graphql_sees_it_live() {
    let app = spawn_app().await;
    let key = operator_key(&app, "claude-code").await;
    let id = app.create_task(json!({ "title": "Fix the flaky test", "priority": "HIGH" })).await;
    let mut ws = app.ws_ready().await;
    ws.subscribe(
        "t",
        "subscription($id: ID) { taskUpdated(taskId: $id) { task { status claimedBy commentCount } } }",
        json!({ "id": id }),
    )
    .await;

    let mut mcp = Mcp::new(&app, Some(&key));
    let hello = mcp.initialize().await;
    assert_eq!(hello["result"]["serverInfo"]["name"], "mission-control", "{hello}");
    assert!(hello["result"]["capabilities"]["tools"].is_object(), "{hello}");

    let listed = mcp.call("tools/list", json!({})).await;
    let mut names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "claim_task",
            "comment_task",
            "complete_task",
            "create_task",
            "get_task",
            "heartbeat_task",
            "list_tasks",
            "release_task"
        ]
    );
    for tool in listed["result"]["tools"].as_array().unwrap() {
        // The official SDK refuses a tool whose property schema is not an object (`true`).
        for (name, schema) in tool["inputSchema"]["properties"].as_object().unwrap() {
            assert!(schema.is_object(), "{}.{name}: {schema}", tool["name"]);
        }
    }
    let claim_tool = listed["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "claim_task").unwrap();
    let properties = &claim_tool["inputSchema"]["properties"];
    for field in ["status", "priority", "assignedAgent", "tag", "search", "leaseSeconds"] {
        assert!(properties.get(field).is_some(), "claim_task takes {field}: {claim_tool}");
    }

    let listed = mcp.ok("list_tasks", json!({ "status": ["TODO"] })).await;
    assert_eq!(listed["tasks"][0]["id"], id.as_str());

    let claimed = mcp.ok("claim_task", json!({ "priority": ["HIGH"], "leaseSeconds": 120 })).await;
    assert_eq!(claimed["task"]["id"], id.as_str(), "{claimed}");
    assert_eq!(claimed["task"]["claimedBy"], "claude-code");
    let live = ws.next_data("t").await;
    assert_eq!(live["taskUpdated"]["task"]["claimedBy"], "claude-code", "GraphQL sees the claim live");
    mcp.ok("heartbeat_task", json!({ "id": id })).await;
    ws.next_data("t").await;

    let comment = mcp.ok("comment_task", json!({ "id": id, "content": "Found it: a race in setup." })).await;
    assert_eq!(comment["author"], "claude-code");
    assert_eq!(ws.next_data("t").await["taskUpdated"]["task"]["commentCount"], 1);
    let done = mcp.ok("complete_task", json!({ "id": id, "status": "REVIEW", "result": "Fixed in setup." })).await;
    assert_eq!((done["status"].as_str(), done["claimedBy"].as_str()), (Some("REVIEW"), None));
    let mut last = ws.next_data("t").await;
    while last["taskUpdated"]["task"]["status"] != "REVIEW" {
        last = ws.next_data("t").await;
    }

    let seen = task(&app, &id).await;
    let authors: Vec<&str> =
        seen["comments"].as_array().unwrap().iter().map(|c| c["author"].as_str().unwrap()).collect();
    assert_eq!(authors, ["claude-code", "claude-code"]);
    assert_eq!(seen["runs"][0]["status"], "DONE");
    let full = mcp.ok("get_task", json!({ "id": id })).await;
    assert_eq!(full["runs"][0]["result"], "Fixed in setup.");
    assert_eq!(full["comments"].as_array().unwrap().len(), 2);

    // The same audit entries as GraphQL leaves, under the key's name.
    let q = "query($f: AuditFilter) { auditLog(filter: $f, first: 20) { edges { node { action actor actorKind } } } }";
    let audit = app.ok(q, json!({ "f": { "targetId": id } })).await;
    let entries: Vec<(String, String)> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["action"].as_str().unwrap().to_owned(), e["node"]["actor"].as_str().unwrap().to_owned()))
        .collect();
    for action in ["task.claim", "comment.create", "task.complete"] {
        assert!(entries.contains(&(action.to_owned(), "claude-code".to_owned())), "{action}: {entries:?}");
    }

    let created = mcp.ok("create_task", json!({ "title": "Follow-up", "tags": ["mcp"] })).await;
    assert_eq!(created["status"], "TODO");
    let graphql = app.ok("query($id: ID!) { task(id: $id) { title tags } }", json!({ "id": created["id"] })).await;
    assert_eq!(graphql["task"], json!({ "title": "Follow-up", "tags": ["mcp"] }));
}

#[tokio::test]
async fn bad_arguments_are_json_rpc_errors_and_refusals_are_tool_errors_with_their_code() {
    let app = spawn_app().await;
    let id = app.create_task(json!({ "title": "t" })).await;

    let (status, headers, body) =
        Mcp::new(&app, None).post(json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" })).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["data"]["code"], "UNAUTHENTICATED");
    let (status, _, _) =
        Mcp::new(&app, Some("mc_not-a-key")).post(json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" })).await;
    assert_eq!(status, 401);

    let key = operator_key(&app, "agent").await;
    let mut mcp = Mcp::new(&app, Some(&key));
    mcp.initialize().await;

    // The same message as the GraphQL error, as a JSON-RPC invalid-params error.
    let graphql = app.graphql("mutation { claimTask(leaseSeconds: 5) { id } }", json!({})).await;
    let answer = mcp.tool("claim_task", json!({ "leaseSeconds": 5 })).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert_eq!(answer["error"]["message"], error_message(&graphql).as_str());
    assert_eq!(answer["error"]["data"]["code"], "BAD_USER_INPUT");
    for (tool, arguments) in [
        ("claim_task", json!({ "priority": ["SOON"] })),
        ("claim_task", json!({ "lease": 60 })),
        ("list_tasks", json!({ "leaseSeconds": 60 })),
        ("list_tasks", json!({ "first": 0 })),
        ("complete_task", json!({ "id": id })),
        ("comment_task", json!({ "id": id, "content": "  " })),
        ("get_task", json!({ "id": "not-a-uuid" })),
    ] {
        let answer = mcp.tool(tool, arguments.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{tool} {arguments}: {answer}");
    }
    let answer = mcp.tool("no_such_tool", json!({})).await;
    assert!(answer["error"].is_object(), "{answer}");

    // Refusals: a tool error that carries the code; nothing changes.
    let answer = mcp.tool("heartbeat_task", json!({ "id": id })).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(answer["result"]["structuredContent"]["code"], "FORBIDDEN");
    assert!(answer["result"]["content"][0]["text"].as_str().unwrap().starts_with("FORBIDDEN: "));
    let answer = mcp.tool("get_task", json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(answer["result"]["structuredContent"]["code"], "NOT_FOUND");

    let viewer = app.login_token(VIEWER_PASSWORD).await;
    let mut read_only = Mcp::new(&app, Some(&viewer));
    read_only.initialize().await;
    assert_eq!(read_only.ok("list_tasks", json!({})).await["tasks"][0]["id"], id.as_str(), "a viewer reads");
    let answer = read_only.tool("claim_task", json!({})).await;
    assert_eq!(answer["result"]["structuredContent"]["code"], "FORBIDDEN", "{answer}");
    assert_eq!(task(&app, &id).await["claimedBy"], Value::Null);
}
