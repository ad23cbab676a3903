//! Users (a TOML file with argon2 password hashes, reloaded by a running
//! server when it changes) and the bearer tokens the handshake hands out
//! (random, kept server-side, expiring, bounded, revoked with their user).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use citylake_engine::Principal;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Errors reading or changing a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read users file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("users file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write users file {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("user `{0}` already exists")]
    Exists(String),
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error("invalid user: {0}")]
    BadUser(String),
}

/// One user of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Argon2 hash in PHC string format.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl User {
    /// The identity queries of this user run as.
    pub fn principal(&self) -> Principal {
        Principal {
            user: self.name.clone(),
            roles: self.roles.clone(),
            department: self.department.clone(),
            attributes: self.attributes.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<User>,
}

/// The users file: `[[users]]` entries with name, password_hash, roles,
/// department and attributes.
#[derive(Debug, Default)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// Loads a users file; a missing file is an error (use [`Users::default`] for none).
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|error| UsersError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| UsersError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        for u in &file.users {
            PasswordHash::new(&u.password_hash).map_err(|e| UsersError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "user `{}`: password_hash is not an argon2 PHC string: {e}",
                    u.name
                ),
            })?;
        }
        Ok(Self { users: file.users })
    }

    /// Loads the file, or an empty set when it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, UsersError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    /// Writes the file (owner-only permissions: it holds password hashes).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let text = toml::to_string_pretty(&UsersFile {
            users: self.users.clone(),
        })
        .map_err(|e| UsersError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let write_err = |error| UsersError::Write {
            path: path.to_path_buf(),
            error,
        };
        let tmp = path.with_extension("toml.tmp");
        write_private(
            &tmp,
            format!("# citylake users: `citylake user add|remove|list`\n{text}").as_bytes(),
        )
        .map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    pub fn list(&self) -> &[User] {
        &self.users
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds a user with an argon2 hash of `password`.
    pub fn add(
        &mut self,
        name: &str,
        password: &str,
        roles: Vec<String>,
        department: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), UsersError> {
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(UsersError::BadUser(format!(
                "`{name}`: a user name is non-empty, without spaces or `:`"
            )));
        }
        if password.len() < 8 {
            return Err(UsersError::BadUser(
                "a password has at least 8 characters".into(),
            ));
        }
        if roles.is_empty() {
            return Err(UsersError::BadUser(
                "a user needs at least one --role".into(),
            ));
        }
        if self.get(name).is_some() {
            return Err(UsersError::Exists(name.to_string()));
        }
        self.users.push(User {
            name: name.to_string(),
            password_hash: hash_password(password),
            roles,
            department,
            attributes,
        });
        Ok(())
    }

    /// Gives `name` these roles (its password and tokens stay).
    pub fn set_roles(&mut self, name: &str, roles: Vec<String>) -> Result<(), UsersError> {
        if roles.is_empty() {
            return Err(UsersError::BadUser(
                "a user needs at least one --role".into(),
            ));
        }
        let user = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| UsersError::NoSuchUser(name.to_string()))?;
        user.roles = roles;
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(UsersError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// The user whose name and password match. Runs the hash even for an
    /// unknown user, so timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<&User> {
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0V3Ut4eWN0zDH2Fv/cv6bP8wdT8uGG0Lm6yfkYwgvho";
        let user = self.get(name);
        let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY);
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok { user } else { None }
    }
}

/// The users a running server authenticates: a users file, read again when it
/// changes (`citylake user add|remove` while the server runs takes effect on
/// the next call; a broken file is reported and the previous users kept), or a
/// fixed set.
#[derive(Debug)]
pub struct UserDirectory {
    path: Option<PathBuf>,
    state: parking_lot::RwLock<(Arc<Users>, Option<std::time::SystemTime>)>,
    /// Password checks running at once (each Argon2 check takes ~19 MiB and
    /// tens of milliseconds of a core): at most one per core, the rest wait.
    /// A turn is held by the check itself, not by the call waiting for it: a
    /// caller who goes away (a reset stream, a closed connection) leaves its
    /// check running, and holding its turn until it ends (red team: cancelled
    /// logins once freed their turns and piled checks up without bound).
    checks: Arc<tokio::sync::Semaphore>,
    /// Checks waiting for a turn; beyond [`MAX_WAITING_CHECKS`] a login is
    /// refused at once (an anonymous flood of password attempts neither
    /// exhausts memory nor starves the machine).
    waiting: std::sync::atomic::AtomicUsize,
}

/// Most password checks waiting for a turn (see [`UserDirectory::verify`]).
pub const MAX_WAITING_CHECKS: usize = 64;

fn password_checks() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(cores))
}

impl UserDirectory {
    /// A fixed set of users (tests, embedding).
    pub fn fixed(users: Users) -> Self {
        Self {
            path: None,
            state: parking_lot::RwLock::new((Arc::new(users), None)),
            checks: password_checks(),
            waiting: Default::default(),
        }
    }

    /// The users file at `path`, which must be valid now.
    pub fn watch(path: &Path) -> Result<Self, UsersError> {
        let modified = modified(path);
        let users = Users::load(path)?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            state: parking_lot::RwLock::new((Arc::new(users), modified)),
            checks: password_checks(),
            waiting: Default::default(),
        })
    }

    /// The current user whose name and password these are, checked on a
    /// blocking thread (Argon2 takes tens of milliseconds of CPU by design):
    /// every front end's password check. At most one check per core runs at
    /// once; beyond [`MAX_WAITING_CHECKS`] waiting, the attempt is refused
    /// (`ErrorKind::WouldBlock`: retry later).
    pub async fn verify(&self, user: &str, password: &str) -> std::io::Result<Option<User>> {
        use std::sync::atomic::Ordering;
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_CHECKS {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "too many logins are being checked at once; retry shortly",
            ));
        }
        let waiting = Waiting(&self.waiting);
        let turn = self
            .checks
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        drop(waiting);
        let users = self.current();
        let (user, password) = (user.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            users.verify(&user, &password).cloned()
        })
        .await
        .map_err(std::io::Error::other)
    }

    /// The current users, reading the file again first if it changed.
    pub fn current(&self) -> Arc<Users> {
        if let Some(path) = &self.path {
            let now = modified(path);
            if self.state.read().1 != now {
                let mut state = self.state.write();
                if state.1 != now {
                    state.1 = now;
                    match Users::load(path) {
                        Ok(users) => {
                            tracing::info!(path = %path.display(), users = users.list().len(), "users reloaded");
                            state.0 = Arc::new(users);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the changed users file is invalid; keeping the previous users")
                        }
                    }
                }
            }
        }
        self.state.read().0.clone()
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// An argon2id hash (PHC string) of a password with a random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// A random password for demo users.
pub fn random_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)
}

/// The user name and password of an `Authorization: Basic …` value (padding
/// optional: Go's Flight client sends unpadded base64).
pub fn decode_basic(encoded: &str) -> Result<(String, String), tonic::Status> {
    use base64::Engine as _;
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = lenient
        .decode(encoded.trim())
        .map_err(|_| tonic::Status::unauthenticated("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| tonic::Status::unauthenticated("basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| tonic::Status::unauthenticated("basic credentials are not user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

/// The key under which verified Basic credentials are remembered in
/// [`Tokens`]: a hash of the name, the password and the user's stored password
/// hash (a changed password or a removed user no longer matches). Bearer
/// tokens with its prefix are refused, so it is never a token a client can send.
pub fn basic_key(user: &str, password: &str, stored_hash: Option<&str>) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in [user, password, stored_hash.unwrap_or("")] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{BASIC_KEY_PREFIX}{digest}")
}

/// The prefix of [`basic_key`]s.
pub const BASIC_KEY_PREFIX: &str = "basic:";

/// Most live tokens of one user: a new login beyond it ends the user's oldest.
pub const MAX_TOKENS_PER_USER: usize = 64;
/// Most live tokens in all: beyond it the oldest token ends.
pub const MAX_TOKENS: usize = 65_536;

/// Bearer tokens handed out by the handshake: random, kept here, expiring. A
/// token names its user, not a copy of the user's roles: each call resolves the
/// user afresh (see [`UserDirectory`]), so a changed role applies at once and a
/// removed user's tokens stop working. It also keeps the credential it was
/// issued for (the user's stored password hash then): a token outlives no
/// password change. Expired tokens are purged at each login;
/// the number of live tokens is bounded per user and in all.
#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Issued>>,
}

#[derive(Debug, Clone)]
struct Issued {
    user: String,
    credential: String,
    issued: Instant,
    expires: Instant,
}

/// Whom a valid token was issued to, and for which credential (the stored
/// password hash at login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub user: String,
    pub credential: String,
}

impl Tokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A new token for `user`, logged in with the credential `credential`.
    pub fn issue(&self, user: &str, credential: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        self.remember(&token, user, credential);
        token
    }

    /// Makes `token` (a key the server derived, see [`basic_key`]) valid for
    /// `user` for the tokens' lifetime, within the same bounds as issued ones.
    pub fn remember(&self, token: &str, user: &str, credential: &str) {
        let token = token.to_string();
        let mut tokens = self.tokens.lock();
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
        let oldest = |tokens: &HashMap<String, Issued>, of: Option<&str>| {
            tokens
                .iter()
                .filter(|(_, t)| of.is_none_or(|u| t.user == u))
                .min_by_key(|(_, t)| t.issued)
                .map(|(k, _)| k.clone())
        };
        if tokens.values().filter(|t| t.user == user).count() >= MAX_TOKENS_PER_USER
            && let Some(k) = oldest(&tokens, Some(user))
        {
            tokens.remove(&k);
        }
        if tokens.len() >= MAX_TOKENS
            && let Some(k) = oldest(&tokens, None)
        {
            tokens.remove(&k);
        }
        tokens.insert(
            token.clone(),
            Issued {
                user: user.to_string(),
                credential: credential.to_string(),
                issued: now,
                expires: now + self.ttl,
            },
        );
    }

    /// The owner of a valid, unexpired token (an expired one is removed).
    pub fn check(&self, token: &str) -> Option<TokenOwner> {
        let mut tokens = self.tokens.lock();
        match tokens.get(token) {
            Some(t) if t.expires > Instant::now() => Some(TokenOwner {
                user: t.user.clone(),
                credential: t.credential.clone(),
            }),
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends one token (its user's password changed since it was issued).
    pub fn forget(&self, token: &str) {
        self.tokens.lock().remove(token);
    }

    /// Ends every token of `user` (removed from the users file); how many there were.
    pub fn revoke(&self, user: &str) -> usize {
        let mut tokens = self.tokens.lock();
        let before = tokens.len();
        tokens.retain(|_, t| t.user != user);
        before - tokens.len()
    }

    /// Live tokens now.
    pub fn len(&self) -> usize {
        self.tokens.lock().len()
    }

    /// Whether no token is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A login whose caller goes away while its password is checked keeps
    /// its turn until the check ends (red team: a flood of logins cancelled
    /// at once ran checks beyond one per core, each ~19 MiB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_login_holds_its_turn_until_its_check_ends() {
        let mut users = Users::default();
        users
            .add(
                "ana",
                "a password",
                vec!["analyst".into()],
                None,
                Default::default(),
            )
            .unwrap();
        let directory = UserDirectory::fixed(users);
        let turns = directory.checks.available_permits();
        // the caller leaves a moment after its check started (Argon2 takes
        // tens of milliseconds)
        let left = tokio::time::timeout(
            Duration::from_millis(2),
            directory.verify("ana", "a wrong password"),
        )
        .await;
        assert!(left.is_err(), "the check ended within 2 ms");
        assert_eq!(
            directory.checks.available_permits(),
            turns - 1,
            "the running check gave its turn back when its caller left"
        );
        // and gives it back when it ends
        let deadline = Instant::now() + Duration::from_secs(30);
        while directory.checks.available_permits() < turns {
            assert!(Instant::now() < deadline, "the turn never came back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn add_verify_remove_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::load_or_empty(&path).unwrap();
        let attrs = BTreeMap::from([("district".to_string(), "Xihu".to_string())]);
        users
            .add(
                "ana",
                "correct horse",
                vec!["analyst".into()],
                Some("traffic".into()),
                attrs,
            )
            .unwrap();
        users.save(&path).unwrap();
        // the file holds a hash, never the password, and only the owner may read it
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let users = Users::load(&path).unwrap();
        let ana = users.verify("ana", "correct horse").unwrap();
        assert_eq!(ana.principal().attributes["district"], "Xihu");
        // wrong password, unknown user
        assert!(users.verify("ana", "wrong horse").is_none());
        assert!(users.verify("bob", "correct horse").is_none());
        let mut users = users;
        assert!(matches!(
            users.add("ana", "another pw", vec!["x".into()], None, BTreeMap::new()),
            Err(UsersError::Exists(_))
        ));
        users.remove("ana").unwrap();
        assert!(users.remove("ana").is_err());
    }

    #[test]
    fn bad_users_and_files_are_refused() {
        let mut users = Users::default();
        // short password, no role, bad name
        assert!(
            users
                .add("a", "short", vec!["r".into()], None, BTreeMap::new())
                .is_err()
        );
        assert!(
            users
                .add("a", "long enough", vec![], None, BTreeMap::new())
                .is_err()
        );
        assert!(
            users
                .add(
                    "a b",
                    "long enough",
                    vec!["r".into()],
                    None,
                    BTreeMap::new()
                )
                .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "[[users]]\nname = \"x\"\npassword_hash = \"plain\"\n",
        )
        .unwrap();
        assert!(
            Users::load(&path)
                .unwrap_err()
                .to_string()
                .contains("argon2")
        );
    }

    #[test]
    fn tokens_expire() {
        let tokens = Tokens::new(Duration::from_millis(50));
        let t = tokens.issue("root", "h1");
        assert_eq!(
            tokens.check(&t),
            Some(TokenOwner {
                user: "root".into(),
                credential: "h1".into()
            })
        );
        assert!(tokens.check("forged").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(tokens.check(&t).is_none());
        assert!(tokens.is_empty(), "an expired token is purged when seen");
    }

    #[test]
    fn tokens_are_bounded_per_user_and_revoked_with_their_user() {
        let tokens = Tokens::new(Duration::from_secs(3600));
        let first = tokens.issue("mallory", "h");
        let other = tokens.issue("ana", "h");
        for _ in 0..MAX_TOKENS_PER_USER * 3 {
            tokens.issue("mallory", "h");
        }
        assert_eq!(tokens.len(), MAX_TOKENS_PER_USER + 1);
        assert!(tokens.check(&first).is_none(), "the oldest was ended");
        assert!(
            tokens.check(&other).is_some(),
            "another user's token survives"
        );
        assert_eq!(tokens.revoke("mallory"), MAX_TOKENS_PER_USER);
        assert_eq!(tokens.len(), 1);
    }

    #[test]
    fn a_changed_users_file_is_read_again_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::default();
        let add = |users: &mut Users, name: &str| {
            users
                .add(
                    name,
                    "long enough",
                    vec!["analyst".into()],
                    None,
                    BTreeMap::new(),
                )
                .unwrap()
        };
        add(&mut users, "ana");
        add(&mut users, "bob");
        users.save(&path).unwrap();
        let directory = UserDirectory::watch(&path).unwrap();
        assert!(directory.current().get("bob").is_some());
        // `citylake user remove bob` while the server runs
        std::thread::sleep(Duration::from_millis(20));
        users.remove("bob").unwrap();
        users.save(&path).unwrap();
        assert!(directory.current().get("bob").is_none());
        assert!(directory.current().get("ana").is_some());
        // a broken file keeps the previous users
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "not toml [").unwrap();
        assert!(directory.current().get("ana").is_some());
    }
}
