//! Serving the router over HTTP/1.1 with the limits `axum::serve` does not set: a client gets
//! [`HEADER_READ_TIMEOUT`] to send a request's headers (and no longer to sit idle between
//! requests), and a connection serves at most [`MAX_REQUESTS_PER_CONNECTION`] requests before it
//! is closed, so that no client holds a connection (and its buffers) for ever. Each request
//! carries the peer's address (`ConnectInfo`), which staff logins are counted by. On shutdown
//! the listener closes and the connections finish the requests they are serving, as with
//! `axum::serve`'s graceful shutdown.
//!
//! HTTP/1.1 only: TLS and HTTP/2 belong to the proxy in front; a bare HTTP/2 preface would
//! otherwise be read with no time limit before the header timeout starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client has to send a request's headers, counted from when the connection is
/// ready for a request (so an idle keep-alive connection is closed after it too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests served on one keep-alive connection; the last answer carries `Connection: close`.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1_000;
/// Most bytes of request headers buffered for one connection.
const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// Serve `router` on `listener` until `shutdown`, then wait for the requests in flight.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BUFFER)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection gone before it was accepted:
                    // wait a moment rather than spin, and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let served = Arc::new(AtomicU64::new(0));
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let last = served.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_REQUESTS_PER_CONNECTION;
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let mut response = response.await?;
                if last {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
