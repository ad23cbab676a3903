//! Which connections the front end takes.
//!
//! Before login: at most `max_startups` connections have not logged in yet,
//! at most a quarter of them from one peer (an IPv4 address, or an IPv6 /64:
//! one host's addresses). A connection that never logs in holds its place
//! for the start-up timeout only, and anonymous connections, however many,
//! can neither take the places of logged-in users nor keep other addresses
//! from logging in (the idea of OpenSSH's `MaxStartups`). A start-up place is
//! given back when the connection logs in or ends.
//!
//! At login: at most `max_connections` are logged in, the last
//! [`RESERVED_FOR_SUPERVISORS`] of them only for supervisors (PostgreSQL's
//! `superuser_reserved_connections`), and at most `max_per_user` for one
//! user (PostgreSQL's per-role `CONNECTION LIMIT`): one account's pool, or a
//! red-team analyst's loop, cannot take every connection.
//!
//! A refused connection is told why with PostgreSQL's
//! `53300 too_many_connections` and closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use citylake_server::ops::Peer;
use parking_lot::Mutex;

/// The front end's connection limits and the connections it holds.
pub(crate) struct Doors {
    max_connections: usize,
    max_per_user: usize,
    max_startups: usize,
    max_startups_per_peer: usize,
    state: Mutex<State>,
}

/// Logged-in places only supervisors take, of `max_connections`.
pub(crate) const RESERVED_FOR_SUPERVISORS: usize = 3;

#[derive(Default)]
struct State {
    starting: usize,
    starting_by_peer: HashMap<Peer, usize>,
    logged_in: usize,
    by_user: HashMap<String, usize>,
}

impl Doors {
    /// `max_per_user`: by default an eighth of `max_connections`.
    pub(crate) fn new(
        max_connections: usize,
        max_per_user: Option<usize>,
        max_startups: usize,
    ) -> Self {
        let max_connections = max_connections.max(1);
        let max_startups = max_startups.clamp(1, max_connections);
        Self {
            max_connections,
            max_per_user: max_per_user.unwrap_or(max_connections / 8).max(1),
            max_startups,
            max_startups_per_peer: (max_startups / 4).max(1),
            state: Mutex::default(),
        }
    }

    /// A place for a new connection from `peer`, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, &'static str> {
        let peer = Peer::from(peer);
        let mut state = self.state.lock();
        if state.starting >= self.max_startups {
            return Err("too many connections are logging in; retry shortly");
        }
        let from_peer = state.starting_by_peer.entry(peer).or_default();
        if *from_peer >= self.max_startups_per_peer {
            return Err("too many connections from this address are logging in; retry shortly");
        }
        *from_peer += 1;
        state.starting += 1;
        Ok(Ticket {
            doors: self.clone(),
            peer,
            starting: true,
            user: None,
        })
    }

    /// A logged-in place for `user`, or why there is none.
    fn log_in(&self, state: &mut State, user: &str, supervisor: bool) -> Result<(), String> {
        let theirs = state.by_user.get(user).copied().unwrap_or(0);
        if theirs >= self.max_per_user {
            // PostgreSQL's words
            return Err(format!("too many connections for role \"{user}\""));
        }
        let open_to_all = self
            .max_connections
            .saturating_sub(RESERVED_FOR_SUPERVISORS);
        let bound = if supervisor {
            self.max_connections
        } else {
            open_to_all.max(1)
        };
        if state.logged_in >= bound {
            return Err(if supervisor || open_to_all == 0 {
                "sorry, too many clients already".into()
            } else {
                "remaining connection slots are reserved for supervisors".into()
            });
        }
        state.logged_in += 1;
        *state.by_user.entry(user.to_string()).or_default() += 1;
        Ok(())
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
    /// Whose logged-in place it holds, once logged in.
    user: Option<String>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("starting", &self.starting)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// `user` has logged in: the connection's start-up place is free, and it
    /// takes a logged-in place, or is told why there is none (then it holds
    /// no place and is to be closed). Once per connection; a second call
    /// changes nothing.
    pub(crate) fn logged_in(&mut self, user: &str, supervisor: bool) -> Result<(), String> {
        if !std::mem::take(&mut self.starting) {
            return Ok(());
        }
        let mut state = self.doors.state.lock();
        self.doors.end_startup(&mut state, self.peer);
        self.doors.log_in(&mut state, user, supervisor)?;
        self.user = Some(user.to_string());
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.doors.state.lock();
        if self.starting {
            self.doors.end_startup(&mut state, self.peer);
        }
        if let Some(user) = self.user.take() {
            state.logged_in -= 1;
            if let Some(n) = state.by_user.get_mut(&user) {
                *n -= 1;
                if *n == 0 {
                    state.by_user.remove(&user);
                }
            }
        }
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
        let doors = Arc::new(Doors::new(10, None, 8));
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
        user.logged_in("ana", false).unwrap();
        user.logged_in("ana", false).unwrap(); // twice is once
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
        again.logged_in("dora", false).unwrap();
        {
            let state = doors.state.lock();
            assert_eq!((state.starting, state.logged_in), (6, 2));
        }
        drop((crowd, user, again));
        let state = doors.state.lock();
        assert_eq!((state.starting, state.logged_in), (0, 0));
        assert!(state.starting_by_peer.is_empty() && state.by_user.is_empty());
    }

    #[test]
    fn one_user_cannot_take_every_connection_and_supervisors_keep_theirs() {
        // attack (red team): one logged-in analyst opened connections until
        // the server had none left for anyone
        let doors = Arc::new(Doors::new(16, None, 8));
        assert_eq!(doors.max_per_user, 2);
        let login = |user: &str, supervisor: bool| {
            let mut t = doors.admit(ip("10.0.0.1")).unwrap();
            t.logged_in(user, supervisor).map(|()| t)
        };
        let ana: Vec<_> = (0..2).map(|_| login("ana", false).unwrap()).collect();
        let refused = login("ana", false).unwrap_err();
        assert_eq!(refused, "too many connections for role \"ana\"");
        // a refused login holds no place, of any kind
        assert_eq!(doors.state.lock().logged_in, 2);
        assert_eq!(doors.state.lock().starting, 0);
        // colluding users fill what is open to all: 16 less the 3 kept
        let mut others: Vec<_> = (0..11)
            .map(|i| login(&format!("u{}", i / 2), false).unwrap())
            .collect();
        assert!(
            login("eve", false)
                .unwrap_err()
                .contains("reserved for supervisors")
        );
        // supervisors still log in, up to the total
        let roots: Vec<_> = (0..2).map(|_| login("root", true).unwrap()).collect();
        let audrey = login("audrey", true).unwrap();
        assert!(
            login("audrey", true)
                .unwrap_err()
                .contains("too many clients")
        );
        // the supervisors' places are never open to all
        drop((roots, audrey));
        assert!(login("eve", false).is_err());
        // a place that ends is open again
        others.pop();
        let eve = login("eve", false).unwrap();
        drop((ana, others, eve));
        let state = doors.state.lock();
        assert_eq!((state.starting, state.logged_in), (0, 0));
        assert!(state.by_user.is_empty());
    }
}
