//! The HTTP listener of `hub serve`: its own accept loop (HTTP/1.1), so that no client holds a
//! connection, or a file descriptor, for long without sending a request.
//!
//! - A request's head must arrive within `header_timeout`, counted from when the hub starts
//!   waiting for it: from the accept on a new connection, from the end of the previous response
//!   on a kept-alive one (hyper runs the same timer there), so it is also the keep-alive idle
//!   timeout. A connection past it is closed.
//! - A request's body must arrive within `body_timeout` from the handler's first read, plus one
//!   second for every [`BODY_BYTES_PER_EXTRA_SECOND`] received: a slow link sending a large batch
//!   keeps going, a client trickling bytes does not. Past it the read fails (the route answers
//!   400) and the connection is closed.
//! - At most `max_connections` are open at once. At the cap the hub stops accepting: new
//!   connections wait in the kernel's listen backlog (their requests are answered as soon as a
//!   connection closes) rather than being accepted and closed, which a client would see as a
//!   failed request. A warning says so, at most every [`CAP_WARNING_EVERY`].
//!
//! HTTP/2 is not served (TLS and HTTP/2 are the proxy's job): with prior knowledge (h2c) the
//! protocol is decided by reading a preface that no timer of hyper's bounds.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How often, at most, the warning that the connection cap is reached is logged.
pub const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);
/// A request body's deadline moves one second later for every this many bytes received.
pub const BODY_BYTES_PER_EXTRA_SECOND: u64 = 64 * 1024;
/// File descriptors the default connection cap leaves for everything else: the database and its
/// files, the plugin cache, outgoing HTTP, logs.
const RESERVED_FDS: u64 = 512;
/// The default cap never goes above this many connections, whatever the open-file limit.
const MAX_DEFAULT_CONNECTIONS: u64 = 10_000;

/// The connection limits of `hub serve` (see the module's documentation).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Open connections at most; `None`: [`default_max_connections`] of the open-file limit.
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to its hard limit, logs the
/// outcome, and returns the soft limit in force (`None` where the limits cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let (before, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return None;
        }
    };
    // Linux refuses a soft limit above fs.nr_open (1,048,576 unless raised), even when the hard
    // limit is unlimited.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    match rlimit::increase_nofile_limit(hard.min(nr_open)) {
        Ok(soft) if soft > before => {
            tracing::info!(
                before,
                soft,
                hard,
                "raised the open-file limit from {before} to {soft}"
            );
            Some(soft)
        }
        Ok(_) => {
            tracing::info!(
                soft = before,
                hard,
                "open-file limit: {before} (hard limit {hard})"
            );
            Some(before)
        }
        Err(e) => {
            tracing::warn!(error = %e, soft = before, hard, "could not raise the open-file limit from {before}");
            Some(before)
        }
    }
}

/// The default cap on open connections for a soft open-file limit: what the limit leaves after
/// [`RESERVED_FDS`] (at least half of it), at most [`MAX_DEFAULT_CONNECTIONS`].
pub fn default_max_connections(open_files: u64) -> usize {
    let room = open_files.saturating_sub(RESERVED_FDS).max(open_files / 2);
    room.clamp(1, MAX_DEFAULT_CONNECTIONS) as usize
}

/// The cap in force: the configured one, or the default for the open-file limit (which a
/// configured cap too close to it is warned about).
pub fn max_connections(configured: Option<usize>, open_files: Option<u64>) -> usize {
    match configured {
        Some(cap) => {
            if let Some(files) = open_files
                && cap as u64 > files.saturating_sub(RESERVED_FDS / 4)
            {
                tracing::warn!(
                    max_connections = cap,
                    open_file_limit = files,
                    "--max-connections {cap} leaves little or nothing of the open-file limit ({files}) for the database and plugins: accepting may fail with 'Too many open files'"
                );
            }
            cap.max(1)
        }
        // Without a readable limit, assume the common 1,024.
        None => default_max_connections(open_files.unwrap_or(1024)),
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets each
/// connection finish the request it is in (idle ones close at once), and returns once all are
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    max_connections: usize,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let body_timeout = limits.body_timeout;
    let mut shutdown = pin!(shutdown);
    let mut warned_cap: Option<Instant> = None;
    let mut warned_accept: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_cap.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    warned_cap = Some(Instant::now());
                    let open = max_connections - permits.available_permits();
                    tracing::warn!(
                        open,
                        max_connections,
                        "{open} connections open, the cap of {max_connections}: new connections wait until one closes (raise the cap with --max-connections or HUB_MAX_CONNECTIONS)"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &mut warned_accept).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // What the API reads the client's address from (as axum's
        // `into_make_service_with_connect_info` inserts it), and the body's deadline.
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(|body| DeadlineBody::new(body, body_timeout));
            req.extensions_mut().insert(ConnectInfo(remote));
            req
        });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::debug!(
        connections = graceful.count(),
        "stopped accepting; waiting for open connections"
    );
    graceful.shutdown().await;
}

/// A failed accept: a connection that went away before it was accepted is skipped; anything else
/// (such as running out of file descriptors) is logged, at most every 10 s, and retried after a
/// pause, as the pending connection stays in the backlog.
async fn accept_failed(e: std::io::Error, warned: &mut Option<Instant>) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    if warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
        *warned = Some(Instant::now());
        tracing::warn!(error = %e, "accepting a connection failed; retrying");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A request body that must arrive by a deadline: `timeout` after its first read, plus a second
/// for every [`BODY_BYTES_PER_EXTRA_SECOND`] received.
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    received: u64,
    started: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            received: 0,
            started: None,
        }
    }
}

/// The error a body read gets past its deadline.
#[derive(Debug)]
struct BodyTooSlow {
    timeout: Duration,
    received: u64,
}

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the body did not arrive in time ({} bytes received; the body timeout is {} s plus 1 s per {} KiB)",
            self.received,
            self.timeout.as_secs_f64(),
            BODY_BYTES_PER_EXTRA_SECOND / 1024
        )
    }
}

impl std::error::Error for BodyTooSlow {}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let (started, sleep) = this.started.get_or_insert_with(|| {
            let now = Instant::now();
            (now, Box::pin(tokio::time::sleep(this.timeout)))
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let extra = Duration::from_secs_f64(
                        this.received as f64 / BODY_BYTES_PER_EXTRA_SECOND as f64,
                    );
                    sleep
                        .as_mut()
                        .reset((*started + this.timeout + extra).into());
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {}
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                timeout: this.timeout,
                received: this.received,
            })))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_for_other_files() {
        assert_eq!(default_max_connections(1024), 512);
        assert_eq!(default_max_connections(4096), 3584);
        assert_eq!(default_max_connections(20_000), 10_000);
        assert_eq!(default_max_connections(1 << 20), 10_000);
        assert_eq!(default_max_connections(256), 128);
        assert_eq!(default_max_connections(0), 1);
        assert_eq!(max_connections(Some(50), None), 50);
        assert_eq!(max_connections(None, None), 512);
    }
}
