//! Publishing a lake written locally to an object store, so that an interrupted
//! upload is never mistaken for a complete lake: the old catalog file is
//! deleted first (unpublishing the old lake), the old objects under the prefix
//! are removed, the data files are uploaded (multipart for large files, several
//! at a time), and the catalog file is uploaded last. Readers open a lake
//! through its catalog file, so until that last PUT there is no lake to open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{EngineError, Result};
use crate::storage::{describe_store_error, object_url, open};

/// Default part size: files larger than this are uploaded in parts of this size
/// (S3 allows at most 10,000 parts, so up to ~78 GiB per file); smaller ones in one PUT.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (all but the last); smaller parts fail with `EntityTooSmall`.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Files uploaded at the same time.
const CONCURRENT_UPLOADS: usize = 4;

/// What an upload came to.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub files: u64,
    pub bytes: u64,
    /// Objects of an earlier lake that were removed first.
    pub removed: u64,
}

/// Checks that a lake can be published at `dest` (before spending time
/// generating it): the store answers, and it holds no lake unless `replace`.
/// Returns whether a lake is there (to be replaced).
pub async fn check_destination(dest: &Url, catalog_file: &str, replace: bool) -> Result<bool> {
    let (store, prefix) = open(dest, None)?;
    let key = prefix.join(catalog_file);
    match store.head(&key).await {
        Ok(_) if !replace => Err(EngineError::Storage(format!(
            "{dest} already holds a lake ({catalog_file}); pass --force to replace it"
        ))),
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(EngineError::Storage(format!(
            "cannot reach {}: {}",
            object_url(dest, &key),
            describe_store_error(&e)
        ))),
    }
}

/// Uploads every file under `local` to the prefix `dest` (`s3://bucket/prefix`),
/// `catalog_file` (relative to `local`) last. An existing lake at `dest`
/// (one with a catalog file) is refused unless `replace`. Files larger than
/// `part_size` go up as multipart uploads. `on_file` is called with each
/// file's relative path and size once it is stored.
pub async fn publish_lake(
    local: &Path,
    dest: &Url,
    catalog_file: &str,
    replace: bool,
    part_size: usize,
    on_file: &(dyn Fn(&str, u64) + Sync),
) -> Result<Published> {
    let (store, prefix) = open(dest, None)?;
    let err = |what: &str, path: &StorePath, e: object_store::Error| {
        EngineError::Storage(format!(
            "{what} {}: {}",
            object_url(dest, path),
            describe_store_error(&e)
        ))
    };
    let catalog_key = prefix.clone().join(catalog_file);
    if check_destination(dest, catalog_file, replace).await? {
        store
            .delete(&catalog_key)
            .await
            .map_err(|e| err("cannot unpublish", &catalog_key, e))?;
    }
    // the objects of an earlier (or interrupted) upload
    let old: Vec<StorePath> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| err("cannot list", &prefix, e))?;
    let removed = old.len() as u64;
    store
        .delete_stream(futures::stream::iter(old.into_iter().map(Ok)).boxed())
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| err("cannot remove the old lake at", &prefix, e))?;

    let mut files = vec![];
    walk(local, local, &mut files)
        .map_err(|e| EngineError::Storage(format!("reading {}: {e}", local.display())))?;
    files.retain(|rel| rel != catalog_file);
    let uploads = futures::stream::iter(files.into_iter().map(|rel| {
        let store = store.clone();
        let key = prefix.clone().join_all_rel(&rel);
        let path = local.join(&rel);
        async move {
            let bytes = upload_file(store, &path, &key, part_size)
                .await
                .map_err(|e| {
                    EngineError::Storage(format!(
                        "uploading {} to {}: {e}",
                        path.display(),
                        object_url(dest, &key)
                    ))
                })?;
            on_file(&rel, bytes);
            Ok::<_, EngineError>(bytes)
        }
    }))
    .buffer_unordered(CONCURRENT_UPLOADS)
    .try_collect::<Vec<u64>>()
    .await?;

    // publish: the catalog file last
    let catalog = std::fs::read(local.join(catalog_file))
        .map_err(|e| EngineError::Storage(format!("reading {catalog_file}: {e}")))?;
    let catalog_bytes = catalog.len() as u64;
    store
        .put(&catalog_key, PutPayload::from(catalog))
        .await
        .map_err(|e| err("cannot publish", &catalog_key, e))?;
    on_file(catalog_file, catalog_bytes);
    Ok(Published {
        files: uploads.len() as u64 + 1,
        bytes: uploads.iter().sum::<u64>() + catalog_bytes,
        removed,
    })
}

/// Streams one file into the store: a single PUT when it fits in a part,
/// otherwise a multipart upload that is aborted on failure.
async fn upload_file(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    key: &StorePath,
    part_size: usize,
) -> std::result::Result<u64, String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut writer = BufWriter::with_capacity(store, key.clone(), part_size);
    let n = match tokio::io::copy(&mut file, &mut writer).await {
        Ok(n) => n,
        Err(e) => {
            // cancel the parts already uploaded
            let _ = writer.abort().await;
            return Err(e.to_string());
        }
    };
    // completes the upload (or the single PUT); a failure leaves no object
    writer.shutdown().await.map_err(|e| e.to_string())?;
    Ok(n)
}

/// Every file under `dir`, as paths relative to `base` with `/` separators.
fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("under base");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// `StorePath::join` for a relative path of several segments.
trait JoinRel {
    fn join_all_rel(self, rel: &str) -> StorePath;
}

impl JoinRel for StorePath {
    fn join_all_rel(self, rel: &str) -> StorePath {
        rel.split('/').fold(self, |p, seg| p.join(seg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publishes_the_catalog_last_and_refuses_to_overwrite() {
        let src = tempfile::tempdir().unwrap();
        let dest_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b=1")).unwrap();
        std::fs::write(
            src.path().join("a/b=1/part.parquet"),
            vec![1u8; PART_SIZE + 10],
        )
        .unwrap();
        std::fs::write(src.path().join("catalog.toml"), "x").unwrap();
        let dest = Url::from_directory_path(dest_dir.path()).unwrap();
        let order = std::sync::Mutex::new(vec![]);
        let done = publish_lake(
            src.path(),
            &dest,
            "catalog.toml",
            false,
            PART_SIZE,
            &|rel, _| order.lock().unwrap().push(rel.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(done.files, 2);
        assert_eq!(done.bytes, PART_SIZE as u64 + 11);
        assert_eq!(
            *order.lock().unwrap(),
            vec!["a/b=1/part.parquet", "catalog.toml"]
        );
        let copied = std::fs::read(dest_dir.path().join("a/b=1/part.parquet")).unwrap();
        assert_eq!(copied.len(), PART_SIZE + 10);

        let again = publish_lake(
            src.path(),
            &dest,
            "catalog.toml",
            false,
            PART_SIZE,
            &|_, _| {},
        )
        .await;
        assert!(again.unwrap_err().to_string().contains("--force"));
        // a stale object of the old lake is removed when replacing it
        std::fs::write(dest_dir.path().join("a/stale.parquet"), "old").unwrap();
        let replaced = publish_lake(
            src.path(),
            &dest,
            "catalog.toml",
            true,
            PART_SIZE,
            &|_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(replaced.removed, 2);
        assert!(!dest_dir.path().join("a/stale.parquet").exists());
        assert!(dest_dir.path().join("catalog.toml").exists());
    }
}
