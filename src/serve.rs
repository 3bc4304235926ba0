//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout (a client
//! that trickles its request headers is dropped, so slow sockets cannot hold every file
//! descriptor), WebSocket upgrades, the peer address for every request, and a graceful stop.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `stop` resolves, then lets open requests finish, for at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    drain: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `stopping` is dropped on stop; every connection watches for that.
    let (stopping, stop_seen) = watch::channel(());
    tokio::spawn(async move {
        stop.await;
        drop(stop_seen);
    });
    // Every connection task is counted while it runs.
    let connections = crate::shutdown::Tasks::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.closed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let stopping = stopping.clone();
        let running = connections.enter();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let mut connection =
                pin!(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades());
            let mut stop_seen = pin!(stopping.closed());
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut stop_seen, if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(running);
        });
    }
    drop(listener);
    if !connections.drained(drain).await {
        tracing::warn!(after = ?drain, "requests still in flight at the shutdown timeout; stopping anyway");
    }
    Ok(())
}
