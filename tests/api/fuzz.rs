//! A seeded fuzz run: thousands of mutated GraphQL documents and JSON bodies; the server must
//! answer every one without a 5xx, and keep serving.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::hardening::post_raw;
use crate::helpers::*;

const SEEDS: [&str; 8] = [
    "{ tasks(first: 5, filter: {status: [TODO], search: \"a\"}) { totalCount edges { cursor node { id title tags metadata comments { id } } } } }",
    "mutation { createTask(input: {title: \"fuzz\", tags: [\"a\"], metadata: {k: [1, 2]}, dueDate: \"2030-01-01T00:00:00Z\"}) { id } }",
    "query($id: ID!) { task(id: $id) { id agent { id status } } }",
    "{ feed(first: 3, filter: {type: TASK}) { edges { node { id type metadata } } pageInfo { endCursor } } feedStats { byType { key count } } }",
    "mutation($i: UpdateTaskInput!) { updateTask(id: \"00000000-0000-7000-8000-000000000000\", input: $i) { id } }",
    "{ agents { id metrics { tokens } metricsHistory(first: 2) { totalCount } transcript(limit: 3) { text } } }",
    "fragment F on Task { id ...G } fragment G on Task { title ...F } { tasks { edges { node { ...F } } } }",
    "mutation { addComment(taskId: \"x\", content: \"\") { id } recordAgentMetrics(agentId: \"a\", input: {cost: -1}) { id } }",
];
const ALPHABET: &[u8] = b"{}()[]:!$@.,\"\\ \n#abcdefxyz_0123456789-+=&|";

fn mutate(rng: &mut StdRng, doc: &str) -> String {
    let mut bytes = doc.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..6) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..5) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.random_range(1..8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => bytes.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
            2 => bytes.truncate(at),
            3 => {
                let piece: Vec<u8> = bytes[at.min(bytes.len())..].iter().take(20).copied().collect();
                bytes.splice(at..at, piece);
            }
            _ => bytes.insert(at, rng.random()),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 3 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-1_000_000_i64..1_000_000)),
        3 => json!(
            (0..rng.random_range(0..12))
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        ),
        4 => Value::Array((0..rng.random_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
        _ => {
            let keys = ["query", "variables", "operationName", "extensions", "i", "id", "title", "first"];
            Value::Object(
                (0..rng.random_range(0..4))
                    .map(|_| (keys[rng.random_range(0..keys.len())].to_owned(), random_json(rng, depth + 1)))
                    .collect(),
            )
        }
    }
}

#[tokio::test]
async fn thousands_of_mutated_requests_never_get_a_5xx() {
    let app = spawn_app_with(|c| c.request_rate_limit = 1_000_000, None).await;
    // FUZZ_SEED / FUZZ_ROUNDS explore further; the defaults keep CI repeatable.
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let rounds = std::env::var("FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2500);
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..rounds {
        let body: Vec<u8> = match round % 4 {
            0 | 1 => {
                let seed = SEEDS[rng.random_range(0..SEEDS.len())];
                let doc = mutate(&mut rng, seed);
                let variables = if rng.random_bool(0.5) {
                    random_json(&mut rng, 0)
                } else {
                    json!({ "id": "x", "i": { "title": "" } })
                };
                serde_json::to_vec(&json!({ "query": doc, "variables": variables })).unwrap()
            }
            2 => serde_json::to_vec(&random_json(&mut rng, 0)).unwrap(),
            _ => {
                let seed = SEEDS[rng.random_range(0..SEEDS.len())];
                let raw = serde_json::to_string(&json!({ "query": seed })).unwrap();
                mutate(&mut rng, &raw).into_bytes()
            }
        };
        let (status, _, response) = post_raw(&app, "application/json", body.clone()).await;
        assert!(status < 500, "round {round}: {status} for {:?}: {response}", String::from_utf8_lossy(&body));
        if status == 200 {
            // A batch answers with an array of responses.
            let responses = match &response {
                Value::Array(list) => list.clone(),
                single => vec![single.clone()],
            };
            let errors: Vec<Value> = responses
                .iter()
                .flat_map(|r| r.get("errors").and_then(Value::as_array).cloned().unwrap_or_default())
                .collect();
            for error in errors {
                assert_ne!(
                    error["extensions"]["code"],
                    "INTERNAL_SERVER_ERROR",
                    "round {round}: {error} for {:?}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    let data = app.ok("{ tasks { totalCount } }", json!({})).await;
    assert!(data["tasks"]["totalCount"].is_i64());
}
