//! A plugin's stdout and stderr: kept in a small ring per instance so that what a guest prints
//! (a Rust panic message, a Python traceback) reaches the hub's log and, when the call traps, the
//! error the tenant sees. Writes never fail and never block: past [`OUTPUT_BYTES`] the oldest bytes
//! go, because a guest that prints in a loop must not be able to make a call fail or grow memory.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much of a call's output is kept: the last 4 KiB.
pub const OUTPUT_BYTES: usize = 4096;

/// What a guest wrote to stdout and stderr since the last [`GuestOutput::take`].
#[derive(Debug, Clone, Default)]
pub struct GuestOutput {
    ring: Arc<Mutex<Ring>>,
}

#[derive(Debug, Default)]
struct Ring {
    bytes: VecDeque<u8>,
    dropped: usize,
}

impl GuestOutput {
    fn push(&self, data: &[u8]) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let data = if data.len() > OUTPUT_BYTES {
            ring.dropped += data.len() - OUTPUT_BYTES;
            &data[data.len() - OUTPUT_BYTES..]
        } else {
            data
        };
        let over = (ring.bytes.len() + data.len()).saturating_sub(OUTPUT_BYTES);
        ring.bytes.drain(..over);
        ring.dropped += over;
        ring.bytes.extend(data);
    }

    /// The output so far (lossy UTF-8, the start cut when more was written than is kept), and
    /// forget it.
    pub fn take(&self) -> Option<String> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.bytes.is_empty() {
            return None;
        }
        let bytes: Vec<u8> = ring.bytes.drain(..).collect();
        let text = String::from_utf8_lossy(&bytes);
        let text = if std::mem::take(&mut ring.dropped) > 0 {
            format!("…{}", text.trim_start_matches(char::REPLACEMENT_CHARACTER))
        } else {
            text.into_owned()
        };
        Some(text)
    }
}

/// What a trap's output says about it, in one line: a Rust panic's location and message
/// (`panicked at src/lib.rs:9:5: boom`), or else the last line the guest wrote (a Python
/// traceback ends with the exception).
pub fn last_words(output: &str) -> Option<String> {
    if let Some(at) = output.rfind("panicked at ") {
        let words: Vec<&str> = output[at..]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: "))
            .collect();
        return Some(words.join(" "));
    }
    output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// A trap in words, with what the guest said before it: `it panicked at src/lib.rs:9:5: boom
/// (wasm trap: wasm `unreachable` instruction executed)`.
pub(crate) fn trap_text(trap: String, output: Option<&str>) -> String {
    match output.and_then(last_words) {
        Some(words) if words.starts_with("panicked at ") => format!("it {words} ({trap})"),
        Some(words) => format!("{trap}; it last wrote: {words}"),
        None => trap,
    }
}

/// Sends what the guest printed to the hub's log, under its `tenant` and `plugin` (a warning when
/// the call `trapped`, debug when it printed outside a call), and returns it.
pub(crate) fn log_output(
    output: &GuestOutput,
    tenant: &str,
    plugin: &str,
    trapped: Option<bool>,
) -> Option<String> {
    let text = output.take()?;
    match trapped {
        Some(true) => {
            tracing::warn!(tenant, plugin, output = %text, "the plugin printed before it trapped")
        }
        Some(false) => tracing::info!(tenant, plugin, output = %text, "the plugin printed"),
        None => tracing::debug!(tenant, plugin, output = %text, "the plugin printed"),
    }
    Some(text)
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always room: the ring forgets the oldest bytes instead.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_says_the_start_was_cut() {
        let out = GuestOutput::default();
        assert_eq!(out.take(), None);
        out.push(b"hello ");
        out.push(b"world");
        assert_eq!(out.take().as_deref(), Some("hello world"));
        assert_eq!(out.take(), None, "taken output is forgotten");
        for i in 0..1000 {
            out.push(format!("line {i}\n").as_bytes());
        }
        let text = out.take().unwrap();
        assert!(
            text.starts_with('…') && text.ends_with("line 999\n"),
            "{text}"
        );
        assert!(text.len() <= OUTPUT_BYTES + '…'.len_utf8());
        out.push(&vec![b'x'; 3 * OUTPUT_BYTES]);
        assert_eq!(out.take().unwrap().len(), OUTPUT_BYTES + '…'.len_utf8());
    }

    #[test]
    fn last_words_of_a_panic_and_of_a_traceback() {
        let panic = "\nthread '<unnamed>' panicked at src/lib.rs:92:24:\nmisbehave: on purpose\n\
                     note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            last_words(panic).as_deref(),
            Some("panicked at src/lib.rs:92:24: misbehave: on purpose")
        );
        let traceback =
            "Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: bad\n\n";
        assert_eq!(last_words(traceback).as_deref(), Some("ValueError: bad"));
        assert_eq!(last_words("  \n"), None);
    }
}
