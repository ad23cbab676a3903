//! Which connections the front end takes.
//!
//! At most `max_connections` are open; of those, at most `max_startups` have
//! not logged in yet, and at most a quarter of those come from one peer (an
//! IPv4 address, or an IPv6 /64: one host's addresses). A connection that
//! never logs in holds its place for the start-up timeout only, and
//! anonymous connections, however many, can neither take the places of
//! logged-in users nor keep other addresses from logging in (the idea of
//! OpenSSH's `MaxStartups`). A refused connection is told why with
//! PostgreSQL's `53300 too_many_connections` and closed. A place is given
//! back when the connection logs in or ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// The front end's connection limits and the connections it holds.
pub(crate) struct Doors {
    max_connections: usize,
    max_startups: usize,
    max_startups_per_peer: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: usize,
    starting: usize,
    starting_by_peer: HashMap<Peer, usize>,
}

/// One host: an IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Peer(u128);

impl From<IpAddr> for Peer {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Self(u128::from(v6) >> 64 | 1 << 127),
        }
    }
}

impl Doors {
    pub(crate) fn new(max_connections: usize, max_startups: usize) -> Self {
        let max_startups = max_startups.clamp(1, max_connections.max(1));
        Self {
            max_connections,
            max_startups,
            max_startups_per_peer: (max_startups / 4).max(1),
            state: Mutex::default(),
        }
    }

    /// A place for a new connection from `peer`, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, &'static str> {
        let peer = Peer::from(peer);
        let mut state = self.state.lock();
        if state.open >= self.max_connections {
            return Err("sorry, too many clients already");
        }
        if state.starting >= self.max_startups {
            return Err("too many connections are logging in; retry shortly");
        }
        let from_peer = state.starting_by_peer.entry(peer).or_default();
        if *from_peer >= self.max_startups_per_peer {
            return Err("too many connections from this address are logging in; retry shortly");
        }
        *from_peer += 1;
        state.starting += 1;
        state.open += 1;
        Ok(Ticket {
            doors: self.clone(),
            peer,
            starting: true,
        })
    }

    fn end_startup(&self, state: &mut State, peer: Peer) {
        state.starting -= 1;
        if let Some(n) = state.starting_by_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                state.starting_by_peer.remove(&peer);
            }
        }
    }
}

/// An open connection's place, held until dropped.
pub(crate) struct Ticket {
    doors: Arc<Doors>,
    peer: Peer,
    starting: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("starting", &self.starting)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// The connection has logged in: its start-up place is free.
    pub(crate) fn logged_in(&mut self) {
        if std::mem::take(&mut self.starting) {
            self.doors
                .end_startup(&mut self.doors.state.lock(), self.peer);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.doors.state.lock();
        if self.starting {
            self.doors.end_startup(&mut state, self.peer);
        }
        state.open -= 1;
    }
}

/// The `53300` error a refused connection is sent before it is closed.
pub(crate) fn refusal(why: &str) -> bytes::BytesMut {
    use pgwire::error::ErrorInfo;
    use pgwire::messages::PgWireBackendMessage;
    let info = ErrorInfo::new("FATAL".into(), "53300".into(), why.into());
    let mut buf = bytes::BytesMut::new();
    // an ErrorResponse of three short fields always encodes
    let _ = PgWireBackendMessage::ErrorResponse(info.into()).encode(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn anonymous_connections_cannot_keep_others_out() {
        let doors = Arc::new(Doors::new(10, 8));
        // one address holds at most a quarter of the start-up places
        let attacker: Vec<_> = (0..2)
            .map(|_| doors.admit(ip("10.0.0.66")).unwrap())
            .collect();
        assert!(
            doors
                .admit(ip("10.0.0.66"))
                .unwrap_err()
                .contains("this address")
        );
        // ... and another host's login goes on
        let mut user = doors.admit(ip("10.0.0.7")).unwrap();
        user.logged_in();
        user.logged_in(); // twice is once
        // many hosts fill the start-up places, never the logged-in ones
        let crowd: Vec<_> = (1..=6)
            .filter_map(|i| doors.admit(ip(&format!("10.0.1.{i}"))).ok())
            .collect();
        assert_eq!(crowd.len(), 6);
        assert!(
            doors
                .admit(ip("10.0.2.1"))
                .unwrap_err()
                .contains("logging in")
        );
        // places come back when connections end or log in
        drop(attacker);
        let mut again = doors.admit(ip("10.0.0.66")).unwrap();
        again.logged_in();
        assert_eq!(doors.state.lock().starting, 6);
        assert_eq!(doors.state.lock().open, 8);
        // the total bound counts everyone
        let mut more: Vec<_> = crowd;
        more.push(doors.admit(ip("10.0.3.1")).unwrap());
        more.push(doors.admit(ip("10.0.3.2")).unwrap());
        assert!(
            doors
                .admit(ip("10.0.3.3"))
                .unwrap_err()
                .contains("too many clients")
        );
        drop((more, user, again));
        let state = doors.state.lock();
        assert_eq!((state.open, state.starting), (0, 0));
        assert!(state.starting_by_peer.is_empty());
    }

    #[test]
    fn peers_are_hosts() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(Peer::from(v4) == Peer::from(mapped));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(Peer::from(a) == Peer::from(b));
        assert!(Peer::from(a) != Peer::from(other));
        // an IPv6 /64 whose bits look like an IPv4 address is still another host
        let low: IpAddr = "::a01:203".parse().unwrap();
        assert!(Peer::from(low) != Peer::from(v4));
    }
}
