//! Publishing to a real S3-compatible store: a file larger than a part goes up
//! as a multipart upload and comes back byte for byte; the catalog file is
//! the last object written. Needs a store: `tests/python/test_s3.py` runs it
//! against SeaweedFS with `--ignored` and the `AWS_*` environment, and
//! `CITYLAKE_TEST_S3_PREFIX` naming a free `s3://bucket/prefix`.

use citylake_engine::publish::{PART_SIZE, publish_lake};
use citylake_engine::storage::open;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;

#[tokio::test]
#[ignore = "needs an S3-compatible store: run by tests/python/test_s3.py"]
async fn a_large_file_goes_up_in_parts_and_the_catalog_last() {
    let prefix = std::env::var("CITYLAKE_TEST_S3_PREFIX").expect("CITYLAKE_TEST_S3_PREFIX");
    let dest = url::Url::parse(&prefix).unwrap();
    let src = tempfile::tempdir().unwrap();
    // 2.5 parts of pseudo-random bytes (incompressible, position-dependent)
    let big: Vec<u8> = (0..PART_SIZE * 5 / 2)
        .map(|i| {
            (i as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17) as u8
        })
        .collect();
    std::fs::create_dir_all(src.path().join("data")).unwrap();
    std::fs::write(src.path().join("data/big.parquet"), &big).unwrap();
    std::fs::write(src.path().join("data/small.parquet"), b"small").unwrap();
    std::fs::write(src.path().join("catalog.toml"), b"# catalog").unwrap();
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
    assert_eq!(done.files, 3);
    assert_eq!(order.lock().unwrap().last().unwrap(), "catalog.toml");

    let (store, root) = open(&dest, None).unwrap();
    let key = |rel: &str| {
        rel.split('/')
            .fold(root.clone(), |p: StorePath, seg| p.join(seg))
    };
    let back = store
        .get(&key("data/big.parquet"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(back.len(), big.len());
    assert!(
        back.as_ref() == big.as_slice(),
        "the object differs from the file"
    );
    // S3 reports a multipart object's ETag as "<md5 of the part md5s>-<parts>"
    let meta = store.head(&key("data/big.parquet")).await.unwrap();
    let etag = meta.e_tag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "not a 3-part upload: {etag}"
    );
    let small = store.head(&key("data/small.parquet")).await.unwrap();
    assert!(!small.e_tag.unwrap_or_default().contains('-'));
}
