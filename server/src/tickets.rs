//! The tickets this server hands out, and CancelFlightInfo's reading of them.
//!
//! Every FlightInfo's ticket carries a fresh random id that tags the queries
//! it starts, so that CancelFlightInfo cancels exactly that FlightInfo's
//! queries (and only the caller's — the engine checks the owner):
//! - a statement: `TicketStatementQuery` with handle `{id}:{sql}`;
//! - a prepared statement: `CommandPreparedStatementQuery` with handle
//!   `{id}/{prepared statement handle}`.

use arrow_flight::CancelFlightInfoRequest;
use arrow_flight::sql::{Any, CommandPreparedStatementQuery, TicketStatementQuery};
use prost::Message;
use tonic::Status;

/// A random 128-bit handle or ticket id, hex.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ticket of a statement's FlightInfo.
pub fn statement(sql: &str) -> TicketStatementQuery {
    TicketStatementQuery {
        statement_handle: format!("{}:{sql}", new_id()).into_bytes().into(),
    }
}

/// A statement ticket's (tag, SQL).
pub fn read_statement(ticket: &TicketStatementQuery) -> Result<(String, String), Status> {
    let text = std::str::from_utf8(&ticket.statement_handle)
        .map_err(|_| Status::invalid_argument("statement ticket is not UTF-8 SQL"))?;
    let (tag, sql) = text
        .split_once(':')
        .ok_or_else(|| Status::invalid_argument("not a citylake statement ticket"))?;
    Ok((tag.to_string(), sql.to_string()))
}

/// The ticket of one execution of a prepared statement.
pub fn prepared(handle: &[u8]) -> CommandPreparedStatementQuery {
    CommandPreparedStatementQuery {
        prepared_statement_handle: [new_id().as_bytes(), b"/", handle].concat().into(),
    }
}

/// A prepared statement ticket's tag (absent when a client sends the bare
/// handle) and the prepared statement's handle.
pub fn read_prepared(ticket: &[u8]) -> (Option<String>, Vec<u8>) {
    match std::str::from_utf8(ticket)
        .ok()
        .and_then(|t| t.split_once('/'))
    {
        Some((id, handle)) => (Some(id.to_string()), handle.as_bytes().to_vec()),
        None => (None, ticket.to_vec()),
    }
}

/// The tag of any ticket of ours.
fn tag(ticket: &[u8]) -> Option<String> {
    let any = Any::decode(ticket).ok()?;
    if let Ok(Some(statement)) = any.unpack::<TicketStatementQuery>() {
        return read_statement(&statement).ok().map(|(tag, _)| tag);
    }
    if let Ok(Some(prepared)) = any.unpack::<CommandPreparedStatementQuery>() {
        return read_prepared(&prepared.prepared_statement_handle).0;
    }
    None
}

/// The tags of the queries a CancelFlightInfo request names.
pub fn cancelled_tags(body: &[u8]) -> Result<Vec<String>, Status> {
    let request = CancelFlightInfoRequest::decode(body)
        .map_err(|e| Status::invalid_argument(format!("bad CancelFlightInfo request: {e}")))?;
    let info = request
        .info
        .ok_or_else(|| Status::invalid_argument("CancelFlightInfo without a FlightInfo"))?;
    Ok(info
        .endpoint
        .into_iter()
        .filter_map(|e| e.ticket.and_then(|t| tag(&t.ticket)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::sql::ProstMessageExt;
    use arrow_flight::{FlightEndpoint, FlightInfo, Ticket};

    #[test]
    fn tickets_carry_their_tag() {
        let s = statement("SELECT 1:2");
        let (tag, sql) = read_statement(&s).unwrap();
        assert_eq!(sql, "SELECT 1:2");
        assert_eq!(tag.len(), 32);
        let p = prepared(b"handle/with/slashes");
        let (ptag, handle) = read_prepared(&p.prepared_statement_handle);
        assert_eq!(handle, b"handle/with/slashes");
        assert_ne!(ptag.as_deref(), Some(tag.as_str()), "ids are fresh");

        let info = FlightInfo::new()
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(s.as_any().encode_to_vec())),
            )
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(p.as_any().encode_to_vec())),
            )
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(b"junk".to_vec())));
        let body = CancelFlightInfoRequest::new(info).encode_to_vec();
        assert_eq!(cancelled_tags(&body).unwrap(), [tag, ptag.unwrap()]);
        assert!(cancelled_tags(b"\xff\xff").is_err());
    }
}
