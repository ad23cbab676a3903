//! Writing one Parquet file of the lake: zstd, page-level statistics and page
//! index, sorting metadata, written to a temporary name and renamed when complete.

use std::fs::File;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::Result;

/// Rows per record batch handed to the writer; bounds the generator's memory.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Streams batches into a Parquet file.
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    rows: u64,
}

impl ParquetSink {
    /// Opens `path` for writing (as `path.tmp` until [`finish`](Self::finish)).
    /// `sorted_by` are the indices of the columns the rows are sorted by.
    pub fn create(path: &Path, schema: SchemaRef, sorted_by: &[usize]) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let sorting = (!sorted_by.is_empty()).then(|| {
            sorted_by
                .iter()
                .map(|&i| SortingColumn {
                    column_idx: i as i32,
                    descending: false,
                    nulls_first: false,
                })
                .collect()
        });
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_sorting_columns(sorting)
            .set_max_row_group_row_count(Some(1024 * 1024))
            .build();
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp)?;
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(Self {
            writer,
            tmp,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)?;
        Ok(())
    }

    /// Closes the file and moves it to its final name; returns rows and bytes.
    pub fn finish(self) -> Result<(u64, u64)> {
        self.writer.close()?;
        std::fs::rename(&self.tmp, &self.path)?;
        let bytes = std::fs::metadata(&self.path)?.len();
        Ok((self.rows, bytes))
    }
}
