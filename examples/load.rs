//! Load benchmark: the server's release binary under concurrent writes, reads and 10,000
//! subscribed sockets, optionally beside a second binary in the same run.
//!
//! ```sh
//! cargo run --release --example load                                   # this build
//! cargo run --release --example load -- --baseline /path/to/old/mission-control
//! ```
//!
//! For each binary it starts the server on a fresh SQLite file, then measures with `wrk`
//! (installed with apt-get if missing) at 32 connections:
//! - `list`: 50 of 1,000 tasks by status, every field;
//! - `createTask`: one task per request (with its activity row and event).
//!
//! Then with its own WebSocket clients: `--sockets` (10,000) `graphql-transport-ws` sockets
//! subscribed to `taskUpdated`, the server's RSS per socket, and how long one event takes to
//! reach them all. It prints req/s, p50, p99 and MB, and the ratios to the baseline. Numbers
//! only: nothing here asserts a speed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PASSWORD: &str = "load-benchmark-password";
const CONNECTIONS: usize = 32;
const TASK_FIELDS: &str =
    "id title description status priority assignedAgent createdAt updatedAt dueDate tags metadata commentCount";

struct Options {
    binary: PathBuf,
    baseline: Option<PathBuf>,
    sockets: usize,
    duration: u64,
}

fn options() -> Options {
    let mut options = Options { binary: PathBuf::new(), baseline: None, sockets: 10_000, duration: 10 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--binary" => options.binary = args.next().map(PathBuf::from).unwrap_or_default(),
            "--baseline" => options.baseline = args.next().map(PathBuf::from),
            "--sockets" => options.sockets = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000),
            "--duration" => options.duration = args.next().and_then(|n| n.parse().ok()).unwrap_or(10),
            other => eprintln!("ignoring argument {other}"),
        }
    }
    options
}

/// One workload's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    list: Figures,
    create: Figures,
    idle_rss_mb: f64,
    per_socket_kb: f64,
    fanout: Figures,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = options();
    if options.binary.as_os_str().is_empty() {
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--bin", "mission-control"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !built.success() {
            return Err("cannot build the server".into());
        }
        options.binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mission-control");
    }
    ensure_wrk()?;
    // A build leaves gigabytes of dirty pages; written back during a workload, they slow every
    // fsync of the server's database (a run right after a build measured createTask at half).
    let _ = std::process::Command::new("sync").status();
    let this = measure("this build", &options.binary, &options).await?;
    let baseline = match &options.baseline {
        Some(path) => Some(measure("baseline", path, &options).await?),
        None => None,
    };
    report(&this, baseline.as_ref(), options.sockets);
    Ok(())
}

fn ensure_wrk() -> Result<(), Box<dyn std::error::Error>> {
    if std::process::Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("installing wrk with apt-get");
    let ok = std::process::Command::new("sh")
        .args(["-c", "apt-get install -y wrk >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null)"])
        .status()?
        .success();
    if ok { Ok(()) } else { Err("wrk is needed: install it (apt-get install wrk)".into()) }
}

struct Server {
    child: Child,
    url: String,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(binary: &Path) -> Result<Server, Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("mc-load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MC_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join("mc.db").display()))
        .env("MC_PASSWORD", PASSWORD)
        .env("JWT_SECRET", "load-benchmark-secret-load-benchmark-secret")
        .env("MC_AGENT_RUNTIME", "none")
        .env("MC_REQUEST_RATE_LIMIT", "4000000000")
        .env("MC_WS_RATE_LIMIT", "4000000000")
        .env("MC_LOGIN_RATE_LIMIT", "1000")
        .env("RUST_LOG", "warn")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{url}/health")).send().await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not start", binary.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Server { child, url, port, dir })
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn graphql(client: &reqwest::Client, url: &str, token: &str, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables });
    let response = client.post(format!("{url}/graphql")).bearer_auth(token).json(&body).send().await;
    match response {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn measure(name: &str, binary: &Path, options: &Options) -> Result<Run, Box<dyn std::error::Error>> {
    eprintln!("== {name}: {}", binary.display());
    let server = start(binary).await?;
    let pid = server.child.id().ok_or("no pid")?;
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{}/api/auth/login", server.url))
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().ok_or("login failed")?.to_owned();
    let mut run = Run { idle_rss_mb: rss_mb(pid), ..Run::default() };

    // 1,000 tasks, 200 of each status, for the list.
    let statuses = ["TODO", "IN_PROGRESS", "REVIEW", "DONE", "BLOCKED"];
    let priorities = ["LOW", "MEDIUM", "HIGH", "URGENT"];
    let create = "mutation($i: CreateTaskInput!) { createTask(input: $i) { id } }";
    for i in 0..1000 {
        let input = json!({
            "title": format!("Task {i}"),
            "description": format!("The description of task {i}, a sentence or two long."),
            "status": statuses[i % 5],
            "priority": priorities[i % 4],
            "assignedAgent": format!("agent:main:subagent:{}", i % 20),
            "tags": [format!("tag{}", i % 7), "load"],
            "metadata": { "n": i },
        });
        let answer = graphql(&client, &server.url, &token, create, json!({ "i": input })).await;
        if answer["data"]["createTask"]["id"].as_str().is_none() {
            return Err(format!("seeding failed: {answer}").into());
        }
    }
    let list = format!("{{ tasks(filter: {{status: TODO}}, first: 50) {{ edges {{ node {{ {TASK_FIELDS} }} }} }} }}");
    let sample = graphql(&client, &server.url, &token, &list, json!({})).await;
    let listed = sample["data"]["tasks"]["edges"].as_array().map_or(0, Vec::len);
    if listed != 50 {
        return Err(format!("the list query answered {listed} tasks: {sample}").into());
    }
    run.list = wrk(&server, &token, &list, options.duration).await?;
    eprintln!("   list: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms", run.list.rps, run.list.p50_ms, run.list.p99_ms);
    let write =
        "mutation { createTask(input: {title: \"load\", description: \"written by wrk\", tags: [\"load\"]}) { id } }";
    run.create = wrk(&server, &token, write, options.duration).await?;
    eprintln!(
        "   createTask: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        run.create.rps, run.create.p50_ms, run.create.p99_ms
    );

    let (per_socket_kb, fanout) = fan_out(&server, pid, &token, options.sockets).await?;
    run.per_socket_kb = per_socket_kb;
    run.fanout = fanout;
    eprintln!(
        "   {} sockets: {per_socket_kb:.1} KB each; one event reaches them all in p50 {:.1} ms, p99 {:.1} ms",
        options.sockets, fanout.p50_ms, fanout.p99_ms
    );
    Ok(run)
}

/// `wrk -t2 -c32` posting `query` for `secs` seconds.
async fn wrk(server: &Server, token: &str, query: &str, secs: u64) -> Result<Figures, Box<dyn std::error::Error>> {
    let script = server.dir.join("post.lua");
    let body = json!({ "query": query }).to_string();
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n",
        lua_string(&body)
    );
    std::fs::write(&script, lua)?;
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{}/graphql", server.url))
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        eprintln!("   wrk saw errors:\n{text}");
    }
    let latency = |label: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(duration_ms)
            .unwrap_or(f64::NAN)
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    Ok(Figures { rps, p50_ms: latency("50%"), p99_ms: latency("99%") })
}

fn lua_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `1.23ms`, `850.00us`, `1.02s` in milliseconds.
fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(port: u16, token: &str) -> Result<Socket, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(_)) => continue,
            other => return Err(format!("no ack: {other:?}").into()),
        }
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { taskUpdated { kind taskId task { title } } }" } });
    socket.send(Message::Text(subscribe.to_string().into())).await?;
    Ok(socket)
}

/// Opens `n` subscribed sockets; the server's RSS per socket, and how long one task event
/// takes to reach each.
async fn fan_out(
    server: &Server,
    pid: u32,
    token: &str,
    n: usize,
) -> Result<(f64, Figures), Box<dyn std::error::Error>> {
    let before = rss_mb(pid);
    let port = server.port;
    let mut sockets = Vec::with_capacity(n);
    let mut pending = futures_util::stream::iter((0..n).map(|_| open_socket(port, token))).buffer_unordered(100);
    while let Some(socket) = pending.next().await {
        sockets.push(socket.map_err(|e| e.to_string())?);
    }
    drop(pending);
    // Let every subscription settle, then read the resident size.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_mb(pid);
    let per_socket_kb = (after - before) * 1024.0 / n as f64;

    let (done, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    for mut socket in sockets {
        let done = done.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"next\"")
                {
                    let _ = done.send(Instant::now());
                    break;
                }
            }
            // Keep the socket open until the benchmark ends.
            let _ = socket.next().await;
        });
    }
    drop(done);
    let client = reqwest::Client::new();
    let sent = Instant::now();
    graphql(&client, &server.url, token, "mutation { createTask(input: {title: \"fan-out\"}) { id } }", json!({}))
        .await;
    let mut times = Vec::with_capacity(n);
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while times.len() < n {
        tokio::select! {
            Some(at) = arrivals.recv() => times.push((at - sent).as_secs_f64() * 1000.0),
            _ = &mut deadline => break,
        }
    }
    if times.len() < n {
        eprintln!("   only {} of {n} sockets got the event within 30 s", times.len());
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied();
    let fanout =
        Figures { rps: f64::NAN, p50_ms: pick(0.5).unwrap_or(f64::NAN), p99_ms: pick(0.99).unwrap_or(f64::NAN) };
    Ok((per_socket_kb, fanout))
}

fn report(this: &Run, baseline: Option<&Run>, sockets: usize) {
    let rows: Vec<(String, f64, Option<f64>, bool)> = {
        let b = |f: fn(&Run) -> f64| baseline.map(f);
        vec![
            ("list: req/s".into(), this.list.rps, b(|r| r.list.rps), true),
            ("list: p50 ms".into(), this.list.p50_ms, b(|r| r.list.p50_ms), false),
            ("list: p99 ms".into(), this.list.p99_ms, b(|r| r.list.p99_ms), false),
            ("createTask: req/s".into(), this.create.rps, b(|r| r.create.rps), true),
            ("createTask: p50 ms".into(), this.create.p50_ms, b(|r| r.create.p50_ms), false),
            ("createTask: p99 ms".into(), this.create.p99_ms, b(|r| r.create.p99_ms), false),
            (format!("{sockets} sockets: KB per socket"), this.per_socket_kb, b(|r| r.per_socket_kb), false),
            ("fan-out: p50 ms".into(), this.fanout.p50_ms, b(|r| r.fanout.p50_ms), false),
            ("fan-out: p99 ms".into(), this.fanout.p99_ms, b(|r| r.fanout.p99_ms), false),
            ("idle RSS MB".into(), this.idle_rss_mb, b(|r| r.idle_rss_mb), false),
        ]
    };
    println!();
    match baseline {
        Some(_) => {
            println!("| work | this build | baseline | ratio |");
            println!("|---|---|---|---|");
        }
        None => {
            println!("| work | this build |");
            println!("|---|---|");
        }
    }
    for (label, value, base, higher_is_better) in rows {
        match base {
            Some(base) => {
                let ratio = if higher_is_better { value / base } else { base / value };
                println!("| {label} | {value:.1} | {base:.1} | {ratio:.2}x |");
            }
            None => println!("| {label} | {value:.1} |"),
        }
    }
    if baseline.is_some() {
        println!("\n(ratio > 1 means this build is better: faster, quicker or lighter)");
    }
}
