//! citylake on Apache DataFusion Ballista 55: the same SQL, functions and
//! policies on a cluster.
//!
//! - [`node`]: the scheduler and executor processes (`citylake cluster
//!   scheduler` / `executor`). Their sessions know citylake's scalar, aggregate
//!   and window functions (and the policy's mask function), its configuration
//!   options, and open S3 stores from each node's own `AWS_*` environment.
//! - [`client`]: [`client::Cluster`], the front end's
//!   [`citylake_engine::remote::RemoteExecutor`]: `citylake serve --cluster` and
//!   `citylake sql --cluster` plan and enforce the policy locally, then hand the
//!   optimized plan — scans of the lake's Parquet files under the policy's
//!   projections and filters — to the scheduler and stream the results back.
//! - [`tls`]: mutual TLS between all of them ([`ClusterTls`]), and the
//!   certificates `citylake cluster certs` writes.
//!
//! - [`verified`]: the scheduler hands out a job's results only when each of
//!   its stages ran once (Ballista's in-place recovery from a lost executor can
//!   read rows twice); the front end then runs the query again.
//!
//! Only this crate (and the CLI built with its `cluster` feature) depends on
//! Ballista.

pub mod client;
pub mod node;
pub mod tls;
pub mod verified;

pub use client::Cluster;
pub use tls::ClusterTls;
