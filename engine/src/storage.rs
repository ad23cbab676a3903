//! The object store of a catalog's storage root: local files (`file://`) or an
//! S3-compatible store (`s3://bucket/prefix`), registered with the runtime and
//! checked before any query, so that a wrong root, missing bucket, wrong
//! credentials or missing dataset is an error at start naming what is wrong.

use std::sync::Arc;
use std::time::Duration;

use citylake_catalog::Catalog;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::{EngineError, Result};

/// Registers the store of `catalog`'s root with `runtime` and checks that every
/// dataset's location exists.
pub(crate) async fn register(runtime: &RuntimeEnv, catalog: &Catalog) -> Result<()> {
    let root = catalog.root_url();
    if root.starts_with("file://") {
        return check_local(catalog);
    }
    if root.starts_with("s3://") {
        let store = s3_store(catalog)?;
        let url = url::Url::parse(root)
            .map_err(|e| EngineError::Config(format!("storage root {root}: {e}")))?;
        let bucket_url = url::Url::parse(&format!("s3://{}", url.host_str().unwrap_or_default()))
            .map_err(|e| EngineError::Config(format!("storage root {root}: {e}")))?;
        runtime.register_object_store(&bucket_url, store.clone());
        return check_remote(catalog, store.as_ref(), &url).await;
    }
    let scheme = root.split("://").next().unwrap_or(root);
    Err(EngineError::Config(format!(
        "storage root {root}: scheme `{scheme}` is not supported (supported: file, s3)"
    )))
}

/// An S3 client from the `AWS_*` environment, the catalog's `[storage]`
/// overriding it, with bounded retries and timeouts (a dead store fails, it
/// does not hang).
fn s3_store(catalog: &Catalog) -> Result<Arc<dyn ObjectStore>> {
    let root = catalog.root_url();
    let mut builder = AmazonS3Builder::from_env().with_url(root);
    if let Some(s) = &catalog.spec().storage {
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
        (ClientConfigKey::ConnectTimeout, "5s"),
        (ClientConfigKey::Timeout, "60s"),
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
        .map_err(|e| EngineError::Config(format!("storage root {root}: {e}")))?;
    Ok(Arc::new(store))
}

fn check_local(catalog: &Catalog) -> Result<()> {
    let root = catalog.root_url();
    let path = url::Url::parse(root)
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

async fn check_remote(catalog: &Catalog, store: &dyn ObjectStore, root: &url::Url) -> Result<()> {
    for ds in &catalog.spec().datasets {
        let url = catalog.dataset_url(ds);
        let prefix = url
            .strip_prefix(&format!("s3://{}/", root.host_str().unwrap_or_default()))
            .unwrap_or_default();
        let listing = store
            .list_with_delimiter(Some(&StorePath::from(prefix)))
            .await
            .map_err(|e| {
                EngineError::Config(format!(
                    "storage root {}: cannot list {url} (dataset `{}`): {e}",
                    catalog.root_url(),
                    ds.name
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
