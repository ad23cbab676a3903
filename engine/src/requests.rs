//! Counting object-store requests: a wrapper around any [`ObjectStore`] that
//! counts the calls that become requests to the store (GET, HEAD, LIST, PUT,
//! DELETE, COPY) and the bytes fetched, and a registry that hands every
//! query's scans the wrapped store, so that a session sees the requests its
//! queries made and the engine the requests of all sessions.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, OBJECT_STORE_COALESCE_DEFAULT,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};
use url::Url;

/// Counters of object-store requests (cumulative; take a [`snapshot`](Self::snapshot)
/// before and after to see what something cost).
#[derive(Debug, Default)]
pub struct RequestCounts {
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    put: AtomicU64,
    other: AtomicU64,
    bytes: AtomicU64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> RequestStats {
        RequestStats {
            get: self.get.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn add(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Object-store requests made, by kind, and the bytes fetched by GETs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestStats {
    /// GET requests (whole objects or byte ranges; coalesced ranges count once).
    pub get: u64,
    /// HEAD requests (object metadata).
    pub head: u64,
    /// LIST calls (a listing of many pages counts once).
    pub list: u64,
    /// PUT requests and multipart uploads.
    pub put: u64,
    /// DELETE, COPY and RENAME.
    pub other: u64,
    /// Bytes fetched by GET requests.
    pub bytes: u64,
}

impl RequestStats {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.head + self.list + self.put + self.other
    }

    /// What was made between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            put: self.put - earlier.put,
            other: self.other - earlier.other,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

impl fmt::Display for RequestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests (GET {}, HEAD {}, LIST {}, PUT {}, other {}), {:.1} MiB fetched",
            self.total(),
            self.get,
            self.head,
            self.list,
            self.put,
            self.other,
            self.bytes as f64 / 1_048_576.0
        )
    }
}

/// An object store that counts the requests made through it into one or more
/// [`RequestCounts`] (a session's and the engine's).
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counts: Vec<Arc<RequestCounts>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, counts: Vec<Arc<RequestCounts>>) -> Self {
        Self { inner, counts }
    }

    fn count(&self, pick: impl Fn(&RequestCounts) -> &AtomicU64) {
        for c in &self.counts {
            c.add(pick(c));
        }
    }

    fn count_bytes(&self, range: &Range<u64>) {
        for c in &self.counts {
            c.bytes
                .fetch_add(range.end.saturating_sub(range.start), Ordering::Relaxed);
        }
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.count(|c| &c.put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.count(|c| &c.put);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        self.count(|c| if head { &c.head } else { &c.get });
        let result = self.inner.get_opts(location, options).await?;
        if !head {
            self.count_bytes(&result.range);
        }
        Ok(result)
    }

    /// Forwarded to the inner store (whose own implementation may be faster:
    /// the local store reads every range from one open file), counting one GET
    /// per coalesced range as object_store's rule merges them (ranges less
    /// than 1 MiB apart), which is what an S3 store sends.
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        for merged in coalesced(ranges) {
            self.count(|c| &c.get);
            self.count_bytes(&merged);
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.count(|c| &c.other);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count(|c| &c.list);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count(|c| &c.list);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.count(|c| &c.list);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.count(|c| &c.other);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.count(|c| &c.other);
        self.inner.rename_opts(from, to, options).await
    }
}

/// `ranges` merged as object_store merges them before fetching.
fn coalesced(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start.saturating_sub(last.end) <= OBJECT_STORE_COALESCE_DEFAULT => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// A registry that wraps every store it hands out in a [`CountingStore`]
/// (stores are registered in, and looked up from, the shared registry).
#[derive(Debug)]
pub struct CountingRegistry {
    inner: Arc<dyn ObjectStoreRegistry>,
    counts: Vec<Arc<RequestCounts>>,
}

impl CountingRegistry {
    pub fn new(inner: Arc<dyn ObjectStoreRegistry>, counts: Vec<Arc<RequestCounts>>) -> Self {
        Self { inner, counts }
    }
}

impl ObjectStoreRegistry for CountingRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        let store = self.inner.get_store(url)?;
        Ok(Arc::new(CountingStore::new(store, self.counts.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn counts_each_kind_of_request_and_the_bytes_fetched() {
        let session = Arc::new(RequestCounts::default());
        let engine = Arc::new(RequestCounts::default());
        let store = CountingStore::new(
            Arc::new(InMemory::new()),
            vec![session.clone(), engine.clone()],
        );
        let path = Path::from("a/b.bin");
        store
            .put(&path, PutPayload::from(vec![7u8; 10_000]))
            .await
            .unwrap();
        store.head(&path).await.unwrap();
        store.get_range(&path, 100..600).await.unwrap();
        // ranges less than 1 MiB apart coalesce into one GET
        store
            .get_ranges(&path, &[0..10, 20..30, 9_000..9_100])
            .await
            .unwrap();
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from("a")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(store.get(&Path::from("missing")).await.is_err());
        let s = session.snapshot();
        assert_eq!(s.put, 1);
        assert_eq!(s.head, 1);
        assert_eq!(s.list, 1);
        assert_eq!(s.get, 3, "{s}");
        assert_eq!(s.bytes, 500 + 9_100);
        assert_eq!(engine.snapshot(), s);
        assert_eq!(s.since(&RequestStats::default()), s);
        assert!(s.to_string().starts_with("6 requests"), "{s}");
        assert_eq!(
            coalesced(&[5..6, 0..2, 3_000_000..3_000_010]),
            [0..6, 3_000_000..3_000_010]
        );
    }
}
