//! Mutual TLS between the cluster's processes: the one way a scheduler, an
//! executor or a front end knows the caller is one of its own.
//!
//! Every node holds the cluster's CA certificate and a certificate of its own
//! signed by that CA (`citylake cluster certs` makes them; any PKI will do).
//! - Servers — the scheduler's gRPC service and each executor's Arrow Flight
//!   service — ask every caller for a certificate and refuse one the CA did not
//!   sign, before any gRPC message is read.
//! - Clients — the front end to the scheduler and to the executors (results),
//!   executors to the scheduler (polling for tasks) and to each other (shuffle
//!   data) — present their certificate and check the server's against the same
//!   CA. Ballista opens these connections itself; each goes through
//!   [`ClusterTls::endpoint_override`], which Ballista applies to every client
//!   endpoint it creates, so none stays in plain text.
//!
//! With TLS the cluster schedules by polling (Ballista's pull-staged policy):
//! executors ask the scheduler for tasks, so an executor runs no gRPC service
//! of its own (the push policy's task-launch service has no TLS hook in
//! Ballista 55 and would accept plans from anyone who reaches it).

use std::path::Path;
use std::sync::Arc;

use ballista_core::extension::EndpointOverrideFn;
use ballista_core::utils::{GrpcClientConfig, create_grpc_client_endpoint};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The cluster's CA and this node's own certificate and key.
#[derive(Clone)]
pub struct ClusterTls {
    ca: Certificate,
    identity: Identity,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the key stays out of logs and panics
        f.write_str("ClusterTls { .. }")
    }
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} {path}: {why}")]
    Pem {
        what: &'static str,
        path: String,
        why: &'static str,
    },
}

fn read_pem(what: &'static str, path: &Path, marker: &str) -> Result<Vec<u8>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let looks_right = std::str::from_utf8(&text)
        .map(|t| t.contains("-----BEGIN ") && t.contains(marker))
        .unwrap_or(false);
    if !looks_right {
        return Err(TlsError::Pem {
            what,
            path: path.display().to_string(),
            why: if marker == "PRIVATE KEY" {
                "not a PEM private key"
            } else {
                "not a PEM certificate"
            },
        });
    }
    Ok(text)
}

impl ClusterTls {
    /// Reads the CA certificate, this node's certificate and its private key
    /// (all PEM).
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let ca = read_pem("--cluster-ca", ca, "CERTIFICATE")?;
        let cert = read_pem("--cluster-cert", cert, "CERTIFICATE")?;
        let key = read_pem("--cluster-key", key, "PRIVATE KEY")?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
        })
    }

    /// A server's configuration: this node's certificate, and a certificate
    /// signed by the cluster's CA required of every caller.
    pub fn server(&self) -> ServerTlsConfig {
        citylake_engine::install_tls_provider();
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(false)
    }

    /// A client's configuration: this node's certificate presented, the
    /// server's checked against the cluster's CA only (not the system's roots).
    pub fn client(&self) -> ClientTlsConfig {
        citylake_engine::install_tls_provider();
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }

    /// Turns an endpoint Ballista made (`http://host:port`) into the same
    /// address over mutual TLS, with Ballista's usual client settings.
    pub fn secure(&self, endpoint: &Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        let uri = endpoint.uri();
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let secure = format!("https://{authority}{}", uri.path());
        create_grpc_client_endpoint(secure, Some(&GrpcClientConfig::default()))?
            .tls_config(self.client())
    }

    /// [`Self::secure`] as Ballista's endpoint hook, for the executors' and the
    /// front end's sessions and the executor's connection to its scheduler.
    pub fn endpoint_override(&self) -> EndpointOverrideFn {
        let tls = self.clone();
        Arc::new(move |endpoint: Endpoint| Ok(tls.secure(&endpoint)?))
    }
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub struct Generated {
    /// Whether it made a new CA (`ca.pem`, `ca.key`) or signed with the one there.
    pub new_ca: bool,
    pub ca: std::path::PathBuf,
    pub ca_key: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// The CA's parameters: always the same, so the CA can be rebuilt from its key
/// alone to sign more node certificates later.
fn ca_params() -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "citylake cluster CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Writes `dir/NAME.pem` and `dir/NAME.key`: a certificate for `hosts` (IP
/// addresses or DNS names the node is reached by) that serves and calls,
/// signed by the CA in `dir` (`ca.pem`, `ca.key`), made first when absent.
/// Keys are written readable by their owner only; an existing node
/// certificate is not overwritten.
pub fn generate(dir: &Path, name: &str, hosts: &[String]) -> Result<Generated, String> {
    if hosts.is_empty() {
        return Err("give at least one --host the node is reached by".into());
    }
    if name.is_empty() || name == "ca" || name.contains(['/', '\\', '.']) {
        return Err(format!(
            "--name {name:?}: a plain file name other than \"ca\""
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca_pem = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    for path in [&cert, &key] {
        if path.exists() {
            return Err(format!("{} exists; choose another --name", path.display()));
        }
    }
    let fail = |e: rcgen::Error| e.to_string();
    let new_ca = !ca_key_path.exists();
    let ca_key = if new_ca {
        if ca_pem.exists() {
            return Err(format!(
                "{} exists without ca.key beside it: cannot sign with it",
                ca_pem.display()
            ));
        }
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let ca = ca_params().map_err(fail)?.self_signed(&key).map_err(fail)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_pem, ca.pem()).map_err(|e| format!("{}: {e}", ca_pem.display()))?;
        key
    } else {
        let text = std::fs::read_to_string(&ca_key_path)
            .map_err(|e| format!("{}: {e}", ca_key_path.display()))?;
        rcgen::KeyPair::from_pem(&text).map_err(|e| format!("{}: {e}", ca_key_path.display()))?
    };
    let ca = ca_params()
        .map_err(fail)?
        .self_signed(&ca_key)
        .map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("citylake cluster node {name}"),
    );
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let node_key = rcgen::KeyPair::generate().map_err(fail)?;
    let node = params.signed_by(&node_key, &ca, &ca_key).map_err(fail)?;
    write_private(&key, &node_key.serialize_pem())?;
    std::fs::write(&cert, node.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(Generated {
        new_ca,
        ca: ca_pem,
        ca_key: ca_key_path,
        cert,
        key,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_node_is_signed_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), "scheduler", &["127.0.0.1".into()]).unwrap();
        assert!(first.new_ca);
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let second = generate(dir.path(), "executor", &["localhost".into()]).unwrap();
        assert!(!second.new_ca);
        // the CA file is untouched and both load
        assert_eq!(std::fs::read_to_string(&second.ca).unwrap(), ca);
        ClusterTls::load(&second.ca, &second.cert, &second.key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&second.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // no overwrite, no CA name, no hosts
        assert!(generate(dir.path(), "executor", &["x".into()]).is_err());
        assert!(generate(dir.path(), "ca", &["x".into()]).is_err());
        assert!(generate(dir.path(), "other", &[]).is_err());
    }

    #[test]
    fn files_that_are_not_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello").unwrap();
        let err = ClusterTls::load(&junk, &junk, &junk)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--cluster-ca") && err.contains("not a PEM certificate"),
            "{err}"
        );
        let missing = dir.path().join("missing");
        let err = ClusterTls::load(&missing, &junk, &junk)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--cluster-ca") && err.contains("missing"),
            "{err}"
        );
    }
}
