//! Engine configuration.

use std::path::PathBuf;

/// How to build an [`Engine`](crate::Engine).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Path of the lake's `catalog.toml`.
    pub catalog: PathBuf,
    /// Memory for query execution, shared by all queries, in bytes. Operators that
    /// can spill (sort, aggregate, join) spill to disk beyond it. `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// Where spill files go (default: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    /// Cap on the total size of spill files, in bytes (default: DataFusion's, 100 GiB).
    pub max_spill_bytes: Option<u64>,
    /// Partitions a query is split into (default: the number of cores).
    pub target_partitions: Option<usize>,
    /// Rows per record batch (default: DataFusion's 8192).
    pub batch_size: Option<usize>,
}

impl EngineConfig {
    /// Defaults for the catalog at `catalog`.
    pub fn new(catalog: impl Into<PathBuf>) -> Self {
        Self {
            catalog: catalog.into(),
            memory_limit: None,
            spill_dir: None,
            max_spill_bytes: None,
            target_partitions: None,
            batch_size: None,
        }
    }
}

/// Parses a size such as `512MiB`, `2GiB`, `1.5G`, `800000` (bytes).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512MiB, 2GiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("`{s}`: unknown unit (use B, KiB, MiB, GiB, TiB)")),
    };
    Ok((n * mult) as usize)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
