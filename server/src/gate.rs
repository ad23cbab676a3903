//! The gate every Flight call passes before its request is read.
//!
//! Without it, a caller's bytes reach memory before anything knows who
//! sent them: the Flight SQL dispatch reads the first message of a DoPut (up
//! to the 64 MiB a message may be) to learn which command it is, before the
//! handler that checks credentials runs, and the transport buffers a whole
//! message of any call before its handler sees it (red team, round 3). The
//! gate closes both in one place, in front of every handler:
//!
//! - **Who, first.** The caller is authenticated from the call's headers
//!   alone (a bearer token, or basic credentials) before a byte of its body
//!   is read; refused, the call ends there. The principal found travels with
//!   the request ([`Authenticated`]), so the handlers do not check again. Only
//!   the handshake passes without, as it is the login itself and reads no body.
//! - **How much, counted as it arrives.** Every byte of a request's body is
//!   counted, as it arrives, against its caller's share and against all
//!   callers' ([`Budget`]), until the request ends; a request that would go
//!   over is refused (`RESOURCE_EXHAUSTED`). The count is of bytes on the wire,
//!   so it sees what the transport holds for a message being decoded, which
//!   the handlers' own counts (ingest, bound parameters) cannot.
//! - **How long.** A request's body must arrive within the ingest timeout; a
//!   client still sending then is answered `DEADLINE_EXCEEDED` and what it sent is
//!   given back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use citylake_engine::Principal;
use http_body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;

use crate::service::CitylakeFlightSql;

/// The login: it carries credentials in its headers and reads no body.
const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";

/// The principal the gate authenticated a request as, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Principal);

/// What the bodies of the requests in progress may hold, per caller and in
/// all, and how long one may take to arrive.
#[derive(Debug)]
pub(crate) struct Budget {
    per_user: u64,
    total: u64,
    deadline: Duration,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: u64,
    users: HashMap<String, u64>,
}

impl Budget {
    pub(crate) fn new(per_user: u64, total: u64, deadline: Duration) -> Self {
        Self {
            per_user,
            total: total.max(per_user),
            deadline,
            held: Mutex::default(),
        }
    }

    /// Bytes held for `user`'s requests in progress, and for all.
    #[cfg(test)]
    fn held(&self, user: &str) -> (u64, u64) {
        let held = self.held.lock();
        (held.users.get(user).copied().unwrap_or(0), held.total)
    }
}

/// A request whose message in progress holds less than this is refused by
/// its user's share only, never by all users': callers who fill the shared
/// budget with large messages do not shut everyone's small calls out.
const SMALL: u64 = 1 << 20;

/// One request's share of the [`Budget`]: the bytes of its message still
/// arriving, given back as the message completes and when the request ends.
#[derive(Debug)]
struct Account {
    budget: Arc<Budget>,
    user: String,
    held: u64,
}

impl Account {
    fn new(budget: Arc<Budget>, user: String) -> Self {
        Self {
            budget,
            user,
            held: 0,
        }
    }

    /// Makes what this request holds `now` bytes: more is counted, or refused
    /// (counting nothing); less is given back.
    fn hold(&mut self, now: u64) -> Result<(), Status> {
        if now <= self.held {
            self.give_back(self.held - now);
            return Ok(());
        }
        let n = now - self.held;
        let mut held = self.budget.held.lock();
        let user = held.users.get(&self.user).copied().unwrap_or(0);
        let over = if user + n > self.budget.per_user {
            Some(("this user's", self.budget.per_user))
        } else if now >= SMALL && held.total + n > self.budget.total {
            Some(("all users'", self.budget.total))
        } else {
            None
        };
        if let Some((whose, limit)) = over {
            return Err(Status::resource_exhausted(format!(
                "{whose} requests would hold more than {} in messages still arriving: send \
                 smaller messages or fewer at once, or retry shortly",
                bytesize::ByteSize::b(limit)
            )));
        }
        *held.users.entry(self.user.clone()).or_default() += n;
        held.total += n;
        self.held = now;
        Ok(())
    }

    fn give_back(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let mut held = self.budget.held.lock();
        held.total -= n;
        if let Some(user) = held.users.get_mut(&self.user) {
            *user -= n;
            if *user == 0 {
                held.users.remove(&self.user);
            }
        }
        self.held -= n;
    }

    /// Gives back all this request holds.
    fn release(&mut self) {
        self.give_back(self.held);
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.release();
    }
}

/// Where a request's body is in its gRPC framing: each message is a 5-byte
/// prefix (a compression flag and a 4-byte length) and that many bytes. A
/// message that has arrived whole is the handler's to count (an ingest's
/// batches, bound parameters); the gate counts the one still arriving, which
/// the transport holds where no handler sees it.
#[derive(Debug, Default)]
struct Framing {
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message's body yet to come (0: in a prefix).
    remaining: u64,
    /// Bytes of the current message (prefix included) arrived so far.
    partial: u64,
}

impl Framing {
    /// Reads `data`; the bytes of the message still arriving after it.
    fn read(&mut self, mut data: &[u8]) -> u64 {
        while !data.is_empty() {
            if self.remaining == 0 {
                let take = (5 - self.prefix_len).min(data.len());
                self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
                self.prefix_len += take;
                self.partial += take as u64;
                data = &data[take..];
                if self.prefix_len == 5 {
                    self.prefix_len = 0;
                    let length = [
                        self.prefix[1],
                        self.prefix[2],
                        self.prefix[3],
                        self.prefix[4],
                    ];
                    self.remaining = u64::from(u32::from_be_bytes(length));
                    if self.remaining == 0 {
                        self.partial = 0;
                    }
                }
            } else {
                let take = self.remaining.min(data.len() as u64);
                self.remaining -= take;
                self.partial += take;
                data = &data[take as usize..];
                if self.remaining == 0 {
                    self.partial = 0;
                }
            }
        }
        self.partial
    }
}

/// A request's body, counted as it arrives and cut off at its deadline.
struct Metered {
    inner: Body,
    account: Account,
    framing: Framing,
    deadline: Instant,
    /// The deadline's timer, made when the body first has to be waited for
    /// (most requests arrive whole in their first frame and need none).
    sleep: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl HttpBody for Metered {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(refused) = this.account.hold(this.framing.read(data))
                {
                    this.ended = true;
                    this.account.release();
                    return Poll::Ready(Some(Err(refused)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.ended = true;
                    this.account.release();
                    return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                        "the request did not all arrive within {} (--ingest-timeout); \
                         what it sent is given back",
                        humantime::format_duration(this.account.budget.deadline)
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts the [`Gate`] in front of the Flight service.
#[derive(Clone)]
pub(crate) struct GateLayer {
    service: Arc<CitylakeFlightSql>,
    budget: Arc<Budget>,
}

impl GateLayer {
    pub(crate) fn new(service: Arc<CitylakeFlightSql>, budget: Budget) -> Self {
        Self {
            service,
            budget: Arc::new(budget),
        }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            service: self.service.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    service: Arc<CitylakeFlightSql>,
    budget: Arc<Budget>,
}

type Request = http::Request<Body>;
type Response = http::Response<Body>;

impl<S> tower_service::Service<Request> for Gate<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // the service made ready is the one called; its clone waits for the next
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.uri().path() == HANDSHAKE {
            return Box::pin(inner.call(request));
        }
        let service = self.service.clone();
        let budget = self.budget.clone();
        Box::pin(async move {
            let started = Instant::now();
            let (mut parts, body) = request.into_parts();
            // the headers and connection only: the body is not touched
            let mut probe = http::Request::new(());
            *probe.headers_mut() = parts.headers.clone();
            *probe.extensions_mut() = parts.extensions.clone();
            let principal = match service.principal(&tonic::Request::from_http(probe)).await {
                Ok(principal) => principal,
                Err(refused) => return Ok(refused.into_http()),
            };
            let account = Account::new(budget.clone(), principal.user.clone());
            parts.extensions.insert(Authenticated(principal));
            let body = Body::new(Metered {
                inner: body,
                account,
                framing: Framing::default(),
                deadline: started + budget.deadline,
                sleep: None,
                ended: false,
            });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_refused_beyond_its_users_share_or_all_and_gives_back() {
        const MIB: u64 = 1 << 20;
        let budget = Arc::new(Budget::new(10 * MIB, 15 * MIB, Duration::from_secs(1)));
        let mut a = Account::new(budget.clone(), "ana".into());
        a.hold(6 * MIB).unwrap();
        let mut b = Account::new(budget.clone(), "ana".into());
        // ana's second request: her share is what her requests hold together
        let refused = b.hold(5 * MIB).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("this user's requests would hold more than 10.0 MiB"),
            "{}",
            refused.message()
        );
        b.hold(4 * MIB).unwrap();
        assert_eq!(budget.held("ana"), (10 * MIB, 10 * MIB));
        // another user within his share, but over all users' bytes
        let mut c = Account::new(budget.clone(), "bo".into());
        let refused = c.hold(6 * MIB).unwrap_err();
        assert!(
            refused.message().contains("all users' requests"),
            "{}",
            refused.message()
        );
        c.hold(5 * MIB).unwrap();
        // a small message passes all users' limit (not its user's)
        let mut d = Account::new(budget.clone(), "cy".into());
        d.hold(SMALL - 1).unwrap();
        assert_eq!(budget.held("cy"), (SMALL - 1, 16 * MIB - 1));
        // a message that completes gives its bytes back; so do ended requests
        a.hold(0).unwrap();
        assert_eq!(budget.held("ana"), (4 * MIB, 10 * MIB - 1));
        drop((a, b, c, d));
        assert_eq!(budget.held("ana"), (0, 0));
        assert!(budget.held.lock().users.is_empty());
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut message = vec![0];
        message.extend((body.len() as u32).to_be_bytes());
        message.extend(body);
        message
    }

    #[test]
    fn the_framing_counts_the_message_still_arriving() {
        let mut f = Framing::default();
        let first = framed(&[1; 100]);
        let second = framed(&[2; 1000]);
        // a prefix split in two, then part of the body
        assert_eq!(f.read(&first[..3]), 3);
        assert_eq!(f.read(&first[3..50]), 50);
        // the first completes, the second begins in the same chunk
        let mut chunk = first[50..].to_vec();
        chunk.extend(&second[..10]);
        assert_eq!(f.read(&chunk), 10);
        assert_eq!(f.read(&second[10..]), 0);
        // an empty message, and whole messages in one chunk
        let mut chunk = framed(&[]);
        chunk.extend(framed(&[3; 7]));
        assert_eq!(f.read(&chunk), 0);
        assert_eq!(f.read(&framed(&[4; 64])[..5]), 5);
    }
}
