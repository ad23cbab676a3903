//! Turns a loaded catalog into DataFusion providers: one listing table per dataset,
//! one schema per domain, and the `system` schema describing them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
    TableProvider,
};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, ViewTable};
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::prelude::col;
use futures::StreamExt;

use crate::Catalog;
use crate::error::{CatalogError, Result};
use crate::spec::DatasetSpec;

/// Name of the schema holding the catalog's own tables.
pub const SYSTEM_SCHEMA: &str = "system";

impl Catalog {
    /// Builds the DataFusion catalog: every dataset as a listing table under its
    /// domain schema, plus `system.datasets` and `system.columns`.
    ///
    /// `state` must already have the object store of the storage root registered.
    pub async fn build_provider(&self, state: &dyn Session) -> Result<Arc<MemoryCatalogProvider>> {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let mut tables = Vec::with_capacity(self.spec.datasets.len());
        for name in self.spec.schema_names() {
            catalog.register_schema(name, Arc::new(MemorySchemaProvider::new()))?;
        }
        for ds in &self.spec.datasets {
            let table = self.listing_table(state, ds).await?;
            let schema = catalog
                .schema(ds.schema_name())
                .expect("schema registered above");
            schema.register_table(ds.table_name().to_string(), table.clone())?;
            tables.push((ds, table));
        }
        let system = Arc::new(MemorySchemaProvider::new());
        system.register_table("datasets".into(), self.datasets_table()?)?;
        system.register_table("columns".into(), columns_table(&tables)?)?;
        catalog.register_schema(SYSTEM_SCHEMA, system)?;
        Ok(catalog)
    }

    /// Plans the catalog's views, in the order declared, with `ctx` — a context
    /// whose catalog of this name is `provider` (and that has the functions the
    /// views use) — and registers them in `provider`, creating view-only schemas.
    /// A view must be a query: DDL, DML and statements are refused.
    pub async fn register_views(
        &self,
        ctx: &SessionContext,
        provider: &MemoryCatalogProvider,
    ) -> Result<()> {
        for name in self.spec.view_only_schema_names() {
            provider.register_schema(name, Arc::new(MemorySchemaProvider::new()))?;
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        for view in &self.spec.views {
            let sql = self.view_sql(view).to_string();
            let err = |message: String| CatalogError::View {
                path: self.path.clone(),
                view: view.name.clone(),
                message,
            };
            let df = ctx
                .sql_with_options(&sql, options)
                .await
                .map_err(|e| err(e.to_string()))?;
            let table = ViewTable::new(df.logical_plan().clone(), Some(sql.clone()));
            let schema = provider
                .schema(view.schema_name())
                .expect("view schemas registered above");
            schema.register_table(view.view_name().to_string(), Arc::new(table))?;
        }
        Ok(())
    }

    async fn listing_table(
        &self,
        state: &dyn Session,
        ds: &DatasetSpec,
    ) -> Result<Arc<dyn TableProvider>> {
        if ds.format == crate::spec::Format::Delta {
            return self.delta_table(state, ds).await;
        }
        let location = self.dataset_url(ds);
        let table_err = self.table_error(ds, &location);
        let url = ListingTableUrl::parse(&location).map_err(table_err)?;
        let partition_cols = ds
            .partition_types()
            .into_iter()
            .map(|(name, t)| (name, t.arrow_type()))
            .collect();
        let sort_order = if ds.sort_order.is_empty() {
            vec![]
        } else {
            vec![
                ds.sort_order
                    .iter()
                    .map(|c| col(c).sort(true, false))
                    .collect(),
            ]
        };
        let format =
            crate::parquet::LakeParquetFormat::new(ParquetFormat::default(), store_url(&location));
        let options = ListingOptions::new(Arc::new(format))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols)
            .with_file_sort_order(sort_order);

        let view_types = state
            .config_options()
            .execution
            .parquet
            .schema_force_view_types;
        let schema: SchemaRef = if ds.columns.is_empty() {
            // nothing declared: the files' schema, merged over every file
            options.infer_schema(state, &url).await.map_err(table_err)?
        } else {
            // declared columns are checked against the first file
            let store = state.runtime_env().object_store(&url).map_err(table_err)?;
            // listed straight from the store, not through the listing cache: a
            // query lists the files afresh, as it would without this check
            let mut listing = store.list(Some(url.prefix()));
            let mut first = None;
            while let Some(object) = listing.next().await {
                let object = object.map_err(|e| table_err(e.into()))?;
                if object.location.as_ref().ends_with(".parquet") {
                    first = Some(object);
                    break;
                }
            }
            match first {
                Some(object) => {
                    let file = options
                        .format
                        .infer_schema(state, &store, std::slice::from_ref(&object))
                        .await
                        .map_err(table_err)?;
                    crate::columns::table_schema(ds, &file, view_types).map_err(|problems| {
                        CatalogError::Columns {
                            path: self.path.clone(),
                            dataset: ds.name.clone(),
                            file: object.location.to_string(),
                            problems,
                        }
                    })?
                }
                // no files yet: the declaration as it stands
                None => match ds.declared_types() {
                    Some(columns) => Arc::new(Schema::new(
                        columns
                            .into_iter()
                            .map(|(name, t)| {
                                Field::new(name, crate::columns::read_type(&t, view_types), true)
                            })
                            .collect::<Vec<_>>(),
                    )),
                    None => options.infer_schema(state, &url).await.map_err(table_err)?,
                },
            }
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        // the runtime's statistics cache, as SessionContext::register_listing_table
        // does: without it every query converts each file's footer statistics again
        let table = ListingTable::try_new(config)
            .map_err(table_err)?
            .with_cache(state.runtime_env().cache_manager.get_file_statistic_cache());
        Ok(Arc::new(table))
    }

    /// A `format = "delta"` dataset: its schema from the table's latest
    /// snapshot, declared columns checked against it as against a Parquet
    /// dataset's first file.
    async fn delta_table(
        &self,
        state: &dyn Session,
        ds: &DatasetSpec,
    ) -> Result<Arc<dyn TableProvider>> {
        let location = self.dataset_url(ds);
        let table_err = self.table_error(ds, &location);
        let url = ListingTableUrl::parse(&location).map_err(table_err)?;
        let store = state.runtime_env().object_store(&url).map_err(table_err)?;
        let log_store = crate::delta::log_store(store, url.as_ref()).map_err(table_err)?;
        let snapshot = crate::delta::DeltaDataset::latest_snapshot(&log_store, &ds.name)
            .await
            .map_err(table_err)?;
        let view_types = state
            .config_options()
            .execution
            .parquet
            .schema_force_view_types;
        let theirs = snapshot.arrow_schema();
        let read_as: Vec<Field> = theirs
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                // text as the session reads Parquet text; partition columns as
                // a listing table types them (their declared type)
                datafusion::arrow::datatypes::DataType::Utf8
                    if view_types && !ds.partitions.iter().any(|p| &p.name == f.name()) =>
                {
                    Field::new(
                        f.name(),
                        datafusion::arrow::datatypes::DataType::Utf8View,
                        true,
                    )
                }
                _ => Field::new(f.name(), f.data_type().clone(), true),
            })
            .collect();
        let schema = crate::columns::table_schema(ds, &Schema::new(read_as), view_types).map_err(
            |problems| CatalogError::Columns {
                path: self.path.clone(),
                dataset: ds.name.clone(),
                file: format!("the Delta table's version {}", snapshot.version()),
                problems,
            },
        )?;
        Ok(Arc::new(crate::delta::DeltaDataset::new(
            ds.name.clone(),
            log_store,
            schema,
        )))
    }

    /// Wraps a DataFusion error about `ds` at `location` as a catalog error.
    fn table_error<'a>(
        &'a self,
        ds: &'a DatasetSpec,
        location: &'a str,
    ) -> impl Fn(datafusion::error::DataFusionError) -> CatalogError + Copy + 'a {
        move |error| CatalogError::Table {
            path: self.path.clone(),
            dataset: ds.name.clone(),
            location: location.to_string(),
            error: Box::new(error),
        }
    }

    fn datasets_table(&self) -> Result<Arc<dyn TableProvider>> {
        let ds = &self.spec.datasets;
        let text = |f: &dyn Fn(&DatasetSpec) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(ds.iter().map(f)))
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("name", text(&|d| d.name.clone())),
            ("schema_name", text(&|d| d.schema_name().to_string())),
            ("table_name", text(&|d| d.table_name().to_string())),
            ("owner", text(&|d| d.owner.clone())),
            (
                "classification",
                text(&|d| d.classification.as_str().to_string()),
            ),
            ("format", text(&|d| d.format.as_str().to_string())),
            // relative to the lake root: where the lake lives on the server's
            // disk or in its bucket is not shown to users (as in plans)
            (
                "location",
                text(&|d| d.location.trim_start_matches("./").to_string()),
            ),
            ("update_frequency", text(&|d| d.update_frequency.clone())),
            (
                "partition_columns",
                text(&|d| {
                    d.partitions
                        .iter()
                        .map(|p| format!("{} {}", p.name, p.data_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
            ),
            ("sort_order", text(&|d| d.sort_order.join(", "))),
            ("description", text(&|d| d.description.clone())),
        ];
        mem_table(columns)
    }
}

/// `system.columns`: every column of every dataset, with its type as the engine
/// sees it, its description and its PII tag.
fn columns_table(
    tables: &[(&DatasetSpec, Arc<dyn TableProvider>)],
) -> Result<Arc<dyn TableProvider>> {
    let (mut schema_name, mut table_name, mut column_name) = (vec![], vec![], vec![]);
    let (mut ordinal, mut data_type, mut is_partition) = (vec![], vec![], vec![]);
    let (mut description, mut pii) = (vec![], vec![]);
    for (ds, table) in tables {
        for (i, field) in table.schema().fields().iter().enumerate() {
            let name = field.name();
            let declared = ds.columns.iter().find(|c| c.name == *name);
            let partition = ds.partitions.iter().find(|p| p.name == *name);
            schema_name.push(ds.schema_name().to_string());
            table_name.push(ds.table_name().to_string());
            column_name.push(name.clone());
            ordinal.push(i as i32 + 1);
            data_type.push(field.data_type().to_string());
            is_partition.push(partition.is_some());
            description.push(
                declared
                    .map(|c| c.description.clone())
                    .or_else(|| partition.map(|p| p.description.clone()))
                    .unwrap_or_default(),
            );
            pii.push(declared.and_then(|c| c.pii).map(|t| t.as_str()));
        }
    }
    mem_table(vec![
        ("schema_name", Arc::new(StringArray::from(schema_name))),
        ("table_name", Arc::new(StringArray::from(table_name))),
        ("column_name", Arc::new(StringArray::from(column_name))),
        ("ordinal_position", Arc::new(Int32Array::from(ordinal))),
        ("data_type", Arc::new(StringArray::from(data_type))),
        ("is_partition", Arc::new(BooleanArray::from(is_partition))),
        ("description", Arc::new(StringArray::from(description))),
        ("pii", Arc::new(StringArray::from(pii))),
    ])
}

/// `scheme://authority` of a location URL: what object paths are relative to.
fn store_url(location: &str) -> String {
    url::Url::parse(location)
        .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()))
        .unwrap_or_default()
}

fn mem_table(columns: Vec<(&str, ArrayRef)>) -> Result<Arc<dyn TableProvider>> {
    let batch = RecordBatch::try_from_iter_with_nullable(
        columns
            .into_iter()
            .map(|(name, array)| (name, array, name == "pii")),
    )
    .map_err(|e| CatalogError::DataFusion(e.into()))?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    Ok(Arc::new(table))
}
