//! One client connection: pgwire's message loop, with the size of every
//! message bounded *before* pgwire buffers it.
//!
//! pgwire accepts a Query, Parse or Bind message of up to 1 GiB — also before
//! the client has logged in — and reads all of it into memory before handing
//! it on: a few anonymous connections could take the server's memory. Here the
//! bytes from the client pass through [`Bounded`], which reads each message's
//! length as it arrives and ends the connection when a message is larger than
//! allowed: 10,000 bytes before login (PostgreSQL's own bound on start-up
//! packets; a password fits), [`MAX_MESSAGE_BYTES`] after. The start-up phase
//! (TLS negotiation, start-up message, password) has [`STARTUP_TIMEOUT`] to
//! complete. A FATAL error ends the connection (pgwire would go on reading).
//! A client that goes away while its statement runs ends the statement.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use pgwire::api::{ClientInfo, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{MaybeTls, negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::handler::Prepared;

/// Largest message a logged-in client may send: a statement (at most 8 MiB,
/// the engine's bound) with room for bound parameter values.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Largest message before login (PostgreSQL's bound on start-up packets).
pub const MAX_STARTUP_MESSAGE_BYTES: usize = 10_000;
/// Time from the connection to a completed login.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The connection's login state, which the start-up handler sets: larger
/// messages are allowed from then on, and its start-up place is given back
/// before the client is told it logged in.
pub struct LoggedIn {
    flag: Arc<AtomicBool>,
    ticket: parking_lot::Mutex<crate::doors::Ticket>,
}

impl LoggedIn {
    /// `user` has logged in: the connection gives back its start-up place
    /// and takes a logged-in one (see `doors`), or is told why there is none.
    pub fn set(&self, user: &str, supervisor: bool) -> Result<(), String> {
        self.ticket.lock().logged_in(user, supervisor)?;
        self.flag.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Serves one connection until it ends.
pub async fn serve(
    socket: TcpStream,
    acceptor: Option<pgwire::tokio::TlsAcceptor>,
    handlers: Arc<crate::Handlers>,
    ticket: crate::doors::Ticket,
) -> io::Result<()> {
    // a second handle on the socket, to notice the client going away while a
    // statement runs (nothing reads the socket then)
    let socket = socket.into_std()?;
    let watcher = TcpStream::from_std(socket.try_clone()?)?;
    let socket = TcpStream::from_std(socket)?;
    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    let negotiated = tokio::select! {
        _ = &mut deadline => return Ok(()),
        negotiated = negotiate_tls::<Prepared>(socket, acceptor) => negotiated?,
    };
    let Some(framed) = negotiated else {
        return Ok(());
    };
    let parts = framed.into_parts();
    let logged_in = Arc::new(AtomicBool::new(false));
    let mut io: Bounded<MaybeTls> = Bounded::new(parts.io, logged_in.clone());
    // bytes pgwire has read already (the start of the start-up message)
    io.scan(&parts.read_buf)?;
    let mut next = FramedParts::new(io, parts.codec);
    next.read_buf = parts.read_buf;
    next.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(next);
    socket.session_extensions().insert(LoggedIn {
        flag: logged_in,
        ticket: parking_lot::Mutex::new(ticket),
    });

    let copy = Arc::new(NoopHandler);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = std::panic::AssertUnwindSafe(socket.next()).catch_unwind();
        let message = if starting {
            tokio::select! {
                _ = &mut deadline => Ok(None),
                message = next => message,
            }
        } else {
            next.await
        };
        let message = match message {
            Ok(Some(Ok(PgWireFrontendMessage::Terminate(_)))) | Ok(None) => break,
            Ok(Some(Ok(message))) => message,
            failed => {
                // too large, not a message, or one pgwire's decoder panics on
                // (a Bind or Parse whose counts run past its end): said once,
                // then the connection ends
                let why = match failed {
                    Ok(Some(Err(e))) => e.to_string(),
                    _ => "malformed message".to_string(),
                };
                let info = ErrorInfo::new("FATAL".into(), "08P01".into(), why);
                let _ =
                    process_error(&mut socket, PgWireError::UserError(Box::new(info)), false).await;
                break;
            }
        };
        let extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let processed = tokio::select! {
            processed = process_message(
                message,
                &mut socket,
                handlers.startup.clone(),
                handlers.query.clone(),
                handlers.query.clone(),
                copy.clone(),
                handlers.cancel.clone(),
            ) => processed,
            // the client went away: its statement is dropped (the query ends
            // as `dropped`, its slot freed), as over Flight SQL
            () = gone(&watcher) => break,
        };
        if let Err(e) = processed {
            let info = ErrorInfo::from(e);
            let fatal = info.is_fatal();
            process_error(
                &mut socket,
                PgWireError::UserError(Box::new(info)),
                extended,
            )
            .await?;
            if fatal {
                break;
            }
        }
    }
    Ok(())
}

/// Resolves when the client has closed its end of the connection (seen even
/// with messages it sent still unread: EPOLLRDHUP).
async fn gone(watcher: &TcpStream) {
    loop {
        match watcher.ready(tokio::io::Interest::READABLE).await {
            Ok(ready) if ready.is_read_closed() => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(_) => return,
        }
    }
}

/// The client's bytes, each message's length checked as it arrives.
struct Bounded<I> {
    inner: I,
    logged_in: Arc<AtomicBool>,
    /// Still in the untyped start-up messages (SSLRequest, GSSENCRequest,
    /// StartupMessage, CancelRequest: length first, no type byte).
    untyped: bool,
    header: [u8; 8],
    have: usize,
    /// Bytes of the current message's body still to come.
    body: usize,
}

impl<I> Bounded<I> {
    fn new(inner: I, logged_in: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            logged_in,
            untyped: true,
            header: [0; 8],
            have: 0,
            body: 0,
        }
    }

    /// Follows the message boundaries through `bytes`; an error for a message
    /// larger than allowed now.
    fn scan(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body > 0 {
                let n = self.body.min(bytes.len());
                self.body -= n;
                bytes = &bytes[n..];
                continue;
            }
            // untyped: length (4) and code (4); typed: type (1) and length (4)
            let header_len = if self.untyped { 8 } else { 5 };
            let n = (header_len - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < header_len {
                continue;
            }
            self.have = 0;
            let at = if self.untyped { 0 } else { 1 };
            let len = i32::from_be_bytes(self.header[at..at + 4].try_into().expect("4 bytes"));
            let limit = if self.logged_in.load(Ordering::Relaxed) {
                MAX_MESSAGE_BYTES
            } else {
                MAX_STARTUP_MESSAGE_BYTES
            };
            let smallest = if self.untyped { 8 } else { 4 };
            if len < smallest || len as usize > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a message of {len} bytes: more than the {limit} a client may send{}",
                        if self.logged_in.load(Ordering::Relaxed) {
                            ""
                        } else {
                            " before logging in"
                        }
                    ),
                ));
            }
            self.body = len as usize - if self.untyped { 8 } else { 4 };
            if self.untyped {
                let code = i32::from_be_bytes(self.header[4..8].try_into().expect("4 bytes"));
                // after a TLS or GSS request comes another untyped message
                const SSL_REQUEST: i32 = 80877103;
                const GSSENC_REQUEST: i32 = 80877104;
                if code != SSL_REQUEST && code != GSSENC_REQUEST {
                    self.untyped = false;
                }
            }
        }
        Ok(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Bounded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled()[before..].to_vec();
                Poll::Ready(this.scan(&new))
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Bounded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(logged_in: bool) -> Bounded<tokio::io::Empty> {
        Bounded::new(tokio::io::empty(), Arc::new(AtomicBool::new(logged_in)))
    }

    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0ana\0\0";
        let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    }

    fn typed(tag: u8, body_len: usize) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body_len + 4) as i32).to_be_bytes());
        m.extend(std::iter::repeat_n(b'x', body_len));
        m
    }

    #[test]
    fn messages_are_bounded_by_the_login_state() {
        // before login: a small password passes, a 20 kB query does not
        let mut s = scanner(false);
        s.scan(&startup()).unwrap();
        s.scan(&typed(b'p', 20)).unwrap();
        assert!(s.scan(&typed(b'Q', 20_000)[..5]).is_err());
        // after login: a 1 MB query passes (byte by byte too), 20 MB does not
        let mut s = scanner(true);
        s.scan(&startup()).unwrap();
        for b in typed(b'Q', 1 << 20) {
            s.scan(&[b]).unwrap();
        }
        assert!(s.scan(&typed(b'Q', 20 << 20)[..5]).is_err());
        // a TLS request is followed by another untyped message
        let mut s = scanner(false);
        let mut ssl = 8i32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&80877103i32.to_be_bytes());
        s.scan(&ssl).unwrap();
        s.scan(&startup()).unwrap();
        s.scan(&typed(b'p', 10)).unwrap();
        // lengths that cannot be
        assert!(scanner(false).scan(&[0, 0, 0, 2, 0, 0, 0, 0]).is_err());
        let mut s = scanner(true);
        s.scan(&startup()).unwrap();
        assert!(s.scan(&[b'Q', 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
