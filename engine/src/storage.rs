//! Object stores: local files (`file://`) and S3-compatible stores
//! (`s3://bucket/prefix`).
//!
//! - [`load_catalog`] reads a catalog file from a local path or an `s3://` URL
//!   (with the files of its views, relative to it).
//! - `register` registers the store of a catalog's storage root with the
//!   runtime and checks it before any query, so that a wrong root, a missing
//!   bucket, wrong credentials or a missing dataset is an error at start naming
//!   what is wrong.
//! - [`open`] builds the client for a URL: S3 settings come from the standard
//!   `AWS_*` environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …), overridden by a catalog's
//!   `[storage]` section (never credentials), with bounded timeouts and retries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use citylake_catalog::spec::StorageSection;
use citylake_catalog::{Catalog, CatalogSpec};
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

use crate::error::{EngineError, Result};

/// Connection timeout of S3 requests unless `AWS_CONNECT_TIMEOUT` says otherwise.
const CONNECT_TIMEOUT: &str = "5s";
/// Whole-request timeout of S3 requests unless `AWS_TIMEOUT` says otherwise.
const REQUEST_TIMEOUT: &str = "60s";

/// Whether `location` (a catalog file or a lake root) is a URL rather than a local path.
pub fn is_url(location: &str) -> bool {
    location.contains("://")
}

/// Parses an object-store URL, naming it in the error.
pub fn parse_url(location: &str) -> Result<Url> {
    Url::parse(location).map_err(|e| EngineError::Config(format!("`{location}` is not a URL: {e}")))
}

/// The object store serving `url` (`s3://bucket/…` or `file:///…`) and the
/// path of `url` inside it. `storage` overrides the environment's S3 settings.
pub fn open(
    url: &Url,
    storage: Option<&StorageSection>,
) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    let path = StorePath::from_url_path(url.path())
        .map_err(|e| EngineError::Config(format!("{url}: {e}")))?;
    match url.scheme() {
        "s3" => Ok((s3_store(url, storage)?, path)),
        "file" => Ok((Arc::new(LocalFileSystem::new()), path)),
        scheme => Err(EngineError::Config(format!(
            "{url}: scheme `{scheme}` is not supported (supported: file, s3)"
        ))),
    }
}

/// `s3://bucket/key` for an object of the store serving `base`.
pub fn object_url(base: &Url, path: &StorePath) -> String {
    format!(
        "{}://{}/{path}",
        base.scheme(),
        base.host_str().unwrap_or_default()
    )
}

/// Loads the catalog at `location`: a local path, or an `s3://` URL read with
/// the environment's S3 settings (the catalog's own `[storage]` section then
/// applies to its datasets).
pub async fn load_catalog(location: &Path) -> Result<Catalog> {
    let text = location.to_string_lossy();
    if !is_url(&text) {
        return Ok(Catalog::load(location)?);
    }
    let url = parse_url(&text)?;
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|_| EngineError::Config(format!("{url} is not a local path")))?;
        return Ok(Catalog::load(path)?);
    }
    let (store, key) = open(&url, None)?;
    let body = read_text(store.as_ref(), &key)
        .await
        .map_err(|e| EngineError::Storage(format!("catalog {url}: {e}")))?;
    let spec = CatalogSpec::from_toml(&body, location)?;
    // the views' files, relative to the catalog, fetched before validation reads them
    let mut files = HashMap::new();
    for file in spec.views.iter().filter_map(|v| v.file.as_deref()) {
        let file_url = url
            .join(file)
            .map_err(|e| EngineError::Config(format!("catalog {url}: view file `{file}`: {e}")))?;
        let (_, key) = open(&file_url, None)?;
        files.insert(
            file.to_string(),
            read_text(store.as_ref(), &key)
                .await
                .map_err(|e| format!("cannot read {file_url}: {e}")),
        );
    }
    Ok(Catalog::from_spec_with(spec, location, |file| {
        files
            .remove(file)
            .unwrap_or_else(|| Err(format!("no file `{file}`")))
    })?)
}

async fn read_text(
    store: &dyn ObjectStore,
    key: &StorePath,
) -> std::result::Result<String, String> {
    let bytes = async { store.get(key).await?.bytes().await }
        .await
        .map_err(|e| describe_store_error(&e))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8 text".to_string())
}

/// The part of an object-store error a user needs (the S3 error code and
/// message; the request details stay in the debug log).
pub fn describe_store_error(e: &object_store::Error) -> String {
    tracing::debug!(error = ?e, "object store error");
    match e {
        object_store::Error::NotFound { path, .. } => format!("object {path} not found"),
        other => other.to_string(),
    }
}

/// Registers the store of `catalog`'s root with `runtime` and checks that every
/// dataset's location exists.
pub async fn register(runtime: &RuntimeEnv, catalog: &Catalog) -> Result<()> {
    let root = catalog.root_url();
    let url = parse_url(root)?;
    match url.scheme() {
        "file" => check_local(catalog),
        "s3" => {
            let (store, _) = open(&url, catalog.spec().storage.as_ref())?;
            let bucket = Url::parse(&format!("s3://{}", url.host_str().unwrap_or_default()))
                .map_err(|e| EngineError::Config(format!("storage root {root}: {e}")))?;
            runtime.register_object_store(&bucket, store.clone());
            check_remote(catalog, store.as_ref(), &url).await
        }
        scheme => Err(EngineError::Config(format!(
            "storage root {root}: scheme `{scheme}` is not supported (supported: file, s3)"
        ))),
    }
}

/// An S3 client for `url`'s bucket from the `AWS_*` environment, `storage`
/// overriding it, with bounded retries and timeouts (a dead store fails, it
/// does not hang).
fn s3_store(url: &Url, storage: Option<&StorageSection>) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    if let Some(s) = storage {
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &s.region {
            builder = builder.with_region(region);
        }
        if let Some(allow) = s.allow_http {
            builder = builder.with_allow_http(allow);
        }
        if let Some(path_style) = s.path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
    }
    for (key, default) in [
        (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
        (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
    ] {
        let key = AmazonS3ConfigKey::Client(key);
        if builder.get_config_value(&key).is_none() {
            builder = builder.with_config(key, default);
        }
    }
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let store = builder
        .with_retry(retry)
        .build()
        .map_err(|e| EngineError::Config(format!("{url}: {e}")))?;
    Ok(Arc::new(store))
}

fn check_local(catalog: &Catalog) -> Result<()> {
    let root = catalog.root_url();
    let path = Url::parse(root)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(|| EngineError::Config(format!("storage root {root} is not a local path")))?;
    if !path.is_dir() {
        return Err(EngineError::Config(format!(
            "storage root {} (from {}) is not a directory",
            path.display(),
            catalog.path().display()
        )));
    }
    // A missing dataset would read as an empty table: refuse it instead.
    for ds in &catalog.spec().datasets {
        let location = path.join(ds.location.trim_start_matches("./"));
        if !location.exists() {
            return Err(missing(catalog, &ds.name, &location.display().to_string()));
        }
    }
    Ok(())
}

async fn check_remote(catalog: &Catalog, store: &dyn ObjectStore, root: &Url) -> Result<()> {
    for ds in &catalog.spec().datasets {
        let url = catalog.dataset_url(ds);
        let prefix = url
            .strip_prefix(&format!("s3://{}/", root.host_str().unwrap_or_default()))
            .unwrap_or_default();
        let listing = store
            .list_with_delimiter(Some(&StorePath::from(prefix)))
            .await
            .map_err(|e| {
                EngineError::Storage(format!(
                    "storage root {}: cannot list {url} (dataset `{}`): {}",
                    catalog.root_url(),
                    ds.name,
                    describe_store_error(&e)
                ))
            })?;
        if listing.objects.is_empty() && listing.common_prefixes.is_empty() {
            return Err(missing(catalog, &ds.name, &url));
        }
    }
    Ok(())
}

fn missing(catalog: &Catalog, dataset: &str, location: &str) -> EngineError {
    EngineError::Config(format!(
        "catalog {}: dataset `{dataset}`: location {location} does not exist",
        catalog.path().display()
    ))
}

/// An object-store registry that opens an S3 bucket's client from the
/// environment (`AWS_*`) the first time a URL of that bucket is used. A cluster
/// node needs it: plans name `s3://bucket/…` locations, and credentials never
/// travel with a query — each node reads its own environment.
#[derive(Debug, Default)]
pub struct EnvObjectStoreRegistry {
    inner: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

impl EnvObjectStoreRegistry {
    pub fn new() -> Self {
        Self::default()
    }
}

impl datafusion::execution::object_store::ObjectStoreRegistry for EnvObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Err(_) if url.scheme() == "s3" => {
                let store = s3_store(url, None)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                // the registry keys stores by scheme and bucket
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
            found => found,
        }
    }
}
