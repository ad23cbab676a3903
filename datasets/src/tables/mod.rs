//! One module per department; each returns its tables' catalog entries and files.

mod common;
mod emergency;
mod environment;
pub(crate) mod finance;
mod hotline;
mod traffic;

use citylake_catalog::{Classification, ColumnSpec, DatasetSpec, PartitionSpec};

use arrow::datatypes::SchemaRef;

use crate::table::{BatchSink, FilePart, TableDef};
use crate::world::World;

/// Every table of the lake, in catalog order.
pub fn all(world: &World) -> Vec<TableDef> {
    let mut tables = vec![common::districts()];
    tables.extend(environment::tables(world));
    tables.extend(traffic::tables(world));
    tables.push(hotline::cases(world));
    tables.push(emergency::incidents(world));
    tables.extend(finance::tables(world));
    tables
}

/// A catalog entry with the fields every generated dataset sets.
fn dataset(
    name: &str,
    owner: &str,
    classification: Classification,
    update_frequency: &str,
    description: &str,
) -> DatasetSpec {
    DatasetSpec {
        owner: owner.into(),
        classification,
        update_frequency: update_frequency.into(),
        description: description.into(),
        ..DatasetSpec::new(name, format!("{}/", name.replace('.', "/")))
    }
}

/// What the data-quality checks hold a dataset to: its key, the event-time
/// column its freshness is judged on, the columns that must have a value and the
/// valid ranges of numeric columns. Names must be declared columns.
struct Expect<'a> {
    key: &'a [&'a str],
    time: Option<&'a str>,
    required: &'a [&'a str],
    ranges: &'a [(&'a str, Option<f64>, Option<f64>)],
}

impl Expect<'_> {
    fn apply(self, spec: &mut DatasetSpec) {
        fn column<'s>(spec: &'s mut DatasetSpec, name: &str) -> &'s mut ColumnSpec {
            let table = spec.name.clone();
            spec.columns
                .iter_mut()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("{table} has no column {name}"))
        }
        for name in self.required {
            column(spec, name).required = true;
        }
        for (name, min, max) in self.ranges {
            let c = column(spec, name);
            c.min = *min;
            c.max = *max;
        }
        for name in self.key.iter().chain(&self.time) {
            column(spec, name);
        }
        spec.primary_key = self.key.iter().map(|k| k.to_string()).collect();
        spec.time_column = self.time.map(str::to_string);
    }
}

fn partition(name: &str, data_type: &str, description: &str) -> PartitionSpec {
    PartitionSpec {
        name: name.into(),
        data_type: data_type.into(),
        description: description.into(),
    }
}

/// Monthly partitions `month=YYYY-MM`.
fn month_partition() -> PartitionSpec {
    partition(
        "month",
        "text",
        "Partition: month of the time column, YYYY-MM",
    )
}

/// Writes the rows of one month (1-12) of a monthly-partitioned table.
type MonthFn = fn(&World, u32, &SchemaRef, &mut BatchSink<'_>) -> crate::Result<()>;

/// One file per month, `month=YYYY-MM/part-0.parquet`, each written by `write`.
fn monthly_parts(world: &World, write: MonthFn) -> Vec<FilePart> {
    let year = world.cal.year;
    (1..=12)
        .map(|month| FilePart {
            rel_path: format!("month={year}-{month:02}/part-0.parquet"),
            write: Box::new(move |world, schema, sink| write(world, month, schema, sink)),
        })
        .collect()
}
