//! Threads of their own for light queries.
//!
//! Admission lets a light query (one that scans little, [`crate::limits::Admission::admit`])
//! start at once, but on a busy server its tasks would still share the
//! runtime's worker threads with every long scan running: measured at 32
//! clients on 2 cores, a 15 ms cockpit query took 400 ms at the median. A
//! light query therefore runs on a small runtime of its own, whose threads the
//! operating system schedules beside the main runtime's, so the long scans
//! cannot take all of the processor from it.
//!
//! The query's plan is executed and polled on that runtime (the tasks its
//! operators spawn land there too); its batches come back through a bounded
//! channel. Dropping the returned stream (the client went, a cancel, a limit)
//! aborts the work there; a panic there ends the query with an error, as on
//! the main runtime.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::{FutureExt, Stream, StreamExt};

/// A runtime for light queries; shut down (without waiting) when dropped.
#[derive(Debug)]
pub struct LightRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl LightRuntime {
    /// A runtime of `threads` worker threads (`citylake-light`); none for 0.
    pub fn new(threads: usize) -> std::io::Result<Option<Self>> {
        if threads == 0 {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("citylake-light")
            // as deep as the main runtime's: executing a deep plan recurses too
            // (the 2 MiB default overflowed on a red-team statement: the process died)
            .thread_stack_size(crate::THREAD_STACK_SIZE)
            .enable_all()
            .build()?;
        Ok(Some(Self {
            runtime: Some(runtime),
        }))
    }

    /// Executes `plan` on this runtime; its results as a stream to poll
    /// anywhere. The work stops when `stop` ends (the query's cancel or
    /// timeout), even while nobody polls the stream: a client that stops
    /// reading must not leave it computing after its slot is given back.
    pub fn execute(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> SendableRecordBatchStream {
        let schema = plan.schema();
        // two batches in flight: the work waits for a slow reader, not more memory
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        let work = async move {
            let run = async {
                let mut stream = datafusion::physical_plan::execute_stream(plan, context)?;
                while let Some(item) = stream.next().await {
                    if tx.send(item).await.is_err() {
                        // nobody reads any more
                        return Ok(());
                    }
                }
                Ok(())
            };
            let guarded = std::panic::AssertUnwindSafe(run).catch_unwind();
            let ended: DfResult<()> = tokio::select! {
                ended = guarded => match ended {
                    Ok(ended) => ended,
                    Err(panic) => Err(crate::session::panicked("executing", panic)),
                },
                () = stop => Err(datafusion::error::DataFusionError::Execution(
                    "the query was cancelled or ran out of time".into(),
                )),
            };
            if let Err(e) = ended {
                let _ = tx.send(Err(e)).await;
            }
        };
        let task = self
            .runtime
            .as_ref()
            .expect("running until dropped")
            // the query's span (its id) follows it to the other threads
            .spawn(tracing::Instrument::instrument(
                work,
                tracing::Span::current(),
            ));
        Box::pin(Remote {
            schema,
            rx,
            task,
            done: false,
        })
    }
}

impl Drop for LightRuntime {
    fn drop(&mut self) {
        // dropped inside the main runtime at shutdown: no blocking wait there
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The results of a query running on the light runtime.
struct Remote {
    schema: SchemaRef,
    rx: tokio::sync::mpsc::Receiver<DfResult<RecordBatch>>,
    task: tokio::task::JoinHandle<()>,
    /// The end was returned.
    done: bool,
}

impl Stream for Remote {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(item) = std::task::ready!(self.rx.poll_recv(cx)) {
            return Poll::Ready(Some(item));
        }
        // the channel closed: an end only if the work ended, not if its task
        // was dropped (the runtime shutting down): a cut result is an error
        let ended = std::task::ready!(Pin::new(&mut self.task).poll(cx));
        self.done = true;
        Poll::Ready(match ended {
            Ok(()) => None,
            Err(e) => Some(Err(datafusion::error::DataFusionError::Execution(format!(
                "the query's work ended before its results: {e}"
            )))),
        })
    }
}

impl RecordBatchStream for Remote {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn results_errors_and_drops_cross_the_runtimes() {
        let light = LightRuntime::new(1).unwrap().unwrap();
        let ctx = SessionContext::new();
        let run = |sql: &'static str| {
            let ctx = ctx.clone();
            let light = &light;
            async move {
                let df = ctx.sql(sql).await.unwrap();
                let plan = df.create_physical_plan().await.unwrap();
                let stream = light.execute(plan, ctx.task_ctx(), std::future::pending());
                stream.collect::<Vec<_>>().await
            }
        };
        // the results, computed on the other runtime's thread
        let got = run("SELECT count(*) AS n FROM generate_series(1, 100000)").await;
        let batch = got[0].as_ref().unwrap();
        assert_eq!(
            datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(batch))
                .unwrap()
                .to_string()
                .lines()
                .nth(3)
                .unwrap(),
            "| 100000 |"
        );
        // an error there is the stream's last item here
        let got =
            run("SELECT CAST(CAST(value AS VARCHAR) || 'x' AS INT) FROM generate_series(1, 3)")
                .await;
        assert!(got.iter().any(|r| r.is_err()), "{got:?}");
        // dropping the stream stops the work: the runtime's task ends
        let df = ctx
            .sql("SELECT count(*) FROM generate_series(1, 1000000000000)")
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let stream = light.execute(plan, ctx.task_ctx(), std::future::pending());
        let handle = light.runtime.as_ref().unwrap().handle().clone();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // the query's task and those its operators spawned run there
        assert!(handle.metrics().num_alive_tasks() >= 1);
        drop(stream);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while handle.metrics().num_alive_tasks() > 0 {
            assert!(std::time::Instant::now() < deadline, "the work went on");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // a stop (cancel, timeout) ends the work while nobody polls the
        // stream, and a later read gets an error, not a clean end
        let df = ctx
            .sql("SELECT count(*) FROM generate_series(1, 1000000000000)")
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut stream = light.execute(plan, ctx.task_ctx(), async move {
            let _ = rx.await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while handle.metrics().num_alive_tasks() > 0 {
            assert!(std::time::Instant::now() < deadline, "the work went on");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let last = stream.next().await.expect("an item");
        assert!(last.unwrap_err().to_string().contains("cancelled"));
    }
}
