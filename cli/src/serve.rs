//! `citylake serve` and `citylake user`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use citylake_server::auth::{random_password, write_private};
use citylake_server::{TlsPem, Users};

use crate::args::{ServeArgs, UserArgs, UserCommand};

/// Name of the users file the demo mode keeps beside the catalog.
const DEMO_USERS: &str = "users.toml";
const DEMO_PASSWORDS: &str = "demo-passwords.txt";

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::sql::resolve_catalog(args.catalog.clone())?;
    let users_path = match &args.users {
        Some(p) => p.clone(),
        None => demo_users(&catalog)?,
    };
    let users = citylake_server::UserDirectory::watch(&users_path)
        .with_context(|| "loading users (citylake user add …)")?;
    if users.current().list().is_empty() {
        bail!(
            "{} has no users; add one with `citylake user add`",
            users_path.display()
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsPem::from_files(cert, key)?),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    if tls.is_none() && !args.bind.ip().is_loopback() {
        eprintln!(
            "WARNING: serving on {} without TLS: passwords and data cross the network in clear text. \
             Pass --tls-cert and --tls-key.",
            args.bind
        );
    }
    if let Some(pg) = args.pg_bind
        && tls.is_none()
        && !pg.ip().is_loopback()
    {
        bail!(
            "refusing to serve Postgres on {pg} without TLS: clients send their password in clear \
             text. Pass --tls-cert and --tls-key, or bind --pg-bind to 127.0.0.1."
        );
    }
    let engine = Arc::new(crate::sql::build_engine(&catalog, &args.engine).await?);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot bind {}", args.bind))?;
    let addr = listener.local_addr()?;
    let pg_listener = match args.pg_bind {
        Some(pg) => Some(
            tokio::net::TcpListener::bind(pg)
                .await
                .with_context(|| format!("cannot bind --pg-bind {pg}"))?,
        ),
        None => None,
    };
    // one signal ends both protocols
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let signal = {
        let signal = shutdown_signal()?;
        async move {
            signal.await;
            let _ = stopping.send(true);
        }
    };
    let ops = citylake_server::ops::Ops::new(engine.clone());
    if let Some(addr) = args.metrics_bind {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind --metrics-bind {addr}"))?;
        eprintln!(
            "Operator endpoints on http://{0}: /metrics (Prometheus), /health, /ready",
            listener.local_addr()?
        );
        let ops = ops.clone();
        tokio::spawn(async move {
            if let Err(e) = ops.serve(listener).await {
                tracing::error!(error = %e, "the operator endpoints stopped");
            }
        });
    }
    let users = Arc::new(users);
    if let Some(listener) = pg_listener {
        let pg = listener.local_addr()?;
        print_psql_help(pg, tls.is_some(), &users_path);
        let mut stopped = stopped.clone();
        let serving = citylake_postgres::serve(
            listener,
            engine.clone(),
            users.clone(),
            tls.clone(),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            citylake_postgres::PgOptions {
                portal_idle: args.pg_portal_idle_timeout.0.unwrap_or(Duration::MAX),
                max_connections: args.pg_max_connections,
                max_connections_per_user: args.pg_max_connections_per_user,
                max_startups: args.pg_max_startups,
            },
        );
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the Postgres front end stopped");
            }
        });
    }
    print_connect_help(addr, tls.is_some(), &users_path);
    let grace = args.shutdown_grace.0.unwrap_or(Duration::MAX);
    let shutdown = async move {
        signal.await;
        ops.shutting_down();
        eprintln!(
            "shutting down: no new calls; running queries get {} to finish",
            args.shutdown_grace
                .0
                .map_or("all the time they need".to_string(), |g| format!("{g:?}"))
        );
    };
    let options = citylake_server::ServeOptions {
        shutdown_grace: grace,
        prepared: citylake_server::PreparedLimits {
            per_user: args.max_prepared_statements,
            idle: args.prepared_idle_timeout.0.unwrap_or(Duration::MAX),
            upload_timeout: args.engine.ingest_timeout,
            ..Default::default()
        },
        max_connections: args.max_connections,
        ..Default::default()
    };
    citylake_server::serve_with_options(
        listener,
        engine,
        users,
        Duration::from_secs(args.token_ttl_secs),
        tls,
        shutdown,
        options,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called (before the server announces itself), so an early signal is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Where the demo users of a catalog in an object store are kept (locally:
/// secrets never go to the shared store).
const REMOTE_DEMO_DIR: &str = "data/demo-users";

/// Demo mode: a users file beside the catalog (for a catalog in an object
/// store, under `data/demo-users/` locally), created on first use with an
/// `admin` and an `analyst` whose random passwords are written to a file only
/// the owner can read, and printed once.
fn demo_users(catalog: &Path) -> anyhow::Result<PathBuf> {
    let dir = if citylake_engine::storage::is_url(&catalog.to_string_lossy()) {
        std::fs::create_dir_all(REMOTE_DEMO_DIR)?;
        Path::new(REMOTE_DEMO_DIR)
    } else {
        catalog.parent().unwrap_or(Path::new("."))
    };
    let path = dir.join(DEMO_USERS);
    if path.exists() {
        eprintln!(
            "Users: {} (demo passwords in {})",
            path.display(),
            dir.join(DEMO_PASSWORDS).display()
        );
        return Ok(path);
    }
    let mut users = Users::default();
    let mut lines =
        String::from("# citylake demo users (user name: password); keep this file private\n");
    eprintln!(
        "Created demo users (shown once; also in {}):",
        dir.join(DEMO_PASSWORDS).display()
    );
    for (name, role) in [("admin", "admin"), ("analyst", "analyst")] {
        let password = random_password();
        users.add(
            name,
            &password,
            vec![role.to_string()],
            None,
            BTreeMap::new(),
        )?;
        lines.push_str(&format!("{name}: {password}\n"));
        eprintln!("  {name:<8} {password}");
    }
    write_private(&dir.join(DEMO_PASSWORDS), lines.as_bytes())?;
    users.save(&path)?;
    Ok(path)
}

/// The analyst's demo password, when the users file is the demo one.
fn demo_password(users: &Path) -> Option<String> {
    let file = users.parent()?.join(DEMO_PASSWORDS);
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("analyst: "))
        .map(|p| p.trim().to_string())
}

fn print_connect_help(addr: SocketAddr, tls: bool, users: &Path) {
    let scheme = if tls { "grpc+tls" } else { "grpc" };
    let jdbc_tls = if tls { "true" } else { "false" };
    let (user, password, who) = match demo_password(users) {
        Some(p) => (
            "analyst",
            p,
            "\n(analyst reads every dataset but the restricted ones, with personal data masked; \
             admin reads everything — its password is in the same file)",
        ),
        None => ("admin", "…".to_string(), ""),
    };
    let tls_note = if tls {
        "\nWith a self-signed certificate, trust it: db_kwargs={..., \"adbc.flight.sql.client_option.tls_root_certs\": open(\"cert.pem\").read()}"
    } else {
        ""
    };
    eprintln!(
        "citylake Flight SQL server listening on {addr} ({}) — users from {}{who}
Connect with ADBC (pip install adbc-driver-flightsql pyarrow):
    import adbc_driver_flightsql.dbapi as flight_sql
    conn = flight_sql.connect(\"{scheme}://{addr}\", db_kwargs={{\"username\": \"{user}\", \"password\": \"{password}\"}}, autocommit=True)
    cur = conn.cursor(); cur.execute(\"SELECT count(*) FROM traffic.segment_speed\"); print(cur.fetchall()){tls_note}
JDBC: jdbc:arrow-flight-sql://{addr}?useEncryption={jdbc_tls}&user={user}&password={password}
Ctrl-C to stop.",
        if tls { "TLS" } else { "plain text" },
        users.display()
    );
}

/// How to reach the Postgres front end with psql.
fn print_psql_help(addr: SocketAddr, tls: bool, users: &Path) {
    let user = if demo_password(users).is_some() {
        "analyst"
    } else {
        "<user>"
    };
    let ssl = if tls { "require" } else { "disable" };
    eprintln!(
        "Postgres protocol on {addr} ({}). psql:\n  psql \"host={} port={} user={user} dbname=citylake sslmode={ssl}\"",
        if tls {
            "TLS"
        } else {
            "plain text, loopback only"
        },
        addr.ip(),
        addr.port(),
    );
}

pub fn user(args: UserArgs) -> anyhow::Result<ExitCode> {
    let path = &args.users;
    match args.command {
        UserCommand::Add {
            name,
            role,
            department,
            attr,
            policy,
        } => {
            check_roles(&role, policy.as_deref(), path)?;
            let mut users = Users::load_or_empty(path)?;
            let mut attributes = BTreeMap::new();
            for a in attr {
                let (k, v) = a
                    .split_once('=')
                    .with_context(|| format!("--attr `{a}` is not KEY=VALUE"))?;
                attributes.insert(k.trim().to_string(), v.trim().to_string());
            }
            let password = read_password(&name)?;
            users.add(&name, &password, role, department, attributes)?;
            users.save(path)?;
            eprintln!("added user {name} to {}", path.display());
        }
        UserCommand::Remove { name } => {
            let mut users = Users::load(path)?;
            users.remove(&name)?;
            users.save(path)?;
            eprintln!("removed user {name} from {}", path.display());
        }
        UserCommand::List => {
            let users = Users::load(path)?;
            println!(
                "{:<16} {:<24} {:<16} attributes",
                "user", "roles", "department"
            );
            for u in users.list() {
                let attrs: Vec<String> = u
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{:<16} {:<24} {:<16} {}",
                    u.name,
                    u.roles.join(","),
                    u.department.as_deref().unwrap_or("-"),
                    attrs.join(" ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a role the policy does not define (a typo would leave the user
/// with no access at all, silently).
fn check_roles(roles: &[String], policy: Option<&Path>, users: &Path) -> anyhow::Result<()> {
    use citylake_engine::policy::{POLICY_FILE, Policy};
    let beside = users.parent().unwrap_or(Path::new(".")).join(POLICY_FILE);
    let (policy, origin) = match policy {
        Some(path) => (Policy::load(path)?, path.display().to_string()),
        None if beside.exists() => (Policy::load(&beside)?, beside.display().to_string()),
        None => (Policy::default_policy(), "the built-in policy".to_string()),
    };
    let defined: Vec<&str> = policy.roles.iter().map(|r| r.name.as_str()).collect();
    for role in roles {
        if !defined.contains(&role.as_str()) {
            bail!(
                "role `{role}` is not defined in {origin}; its roles are {}",
                defined.join(", ")
            );
        }
    }
    Ok(())
}

/// The new user's password: `CITYLAKE_PASSWORD`, else a prompt on the terminal.
fn read_password(name: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CITYLAKE_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: set CITYLAKE_PASSWORD or run on a terminal to be prompted");
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "))?;
    let second = rpassword::prompt_password("Repeat it: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}
