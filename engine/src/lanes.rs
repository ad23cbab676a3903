//! Threads of their own for running queries, one runtime per lane.
//!
//! Admission lets a light query (one that scans little, [`crate::limits::Admission::admit`])
//! start at once, but on a busy server its tasks would still share the
//! runtime's worker threads with every long scan running: measured at 32
//! clients on 2 cores, a 15 ms cockpit query took 400 ms at the median. So
//! the work of executing a query is kept off the main runtime, which serves
//! the protocols (Flight SQL, Postgres), plans, and encodes results:
//!
//! - light queries run on a runtime of their own (`citylake-light`);
//! - general queries run on another (`citylake-general`), whose threads the
//!   operating system schedules at a lower priority (`nice`, 10 by default):
//!   they take what the processor has left after the protocols, the planning
//!   and the light queries. A year-long scan is slowed only while cockpit
//!   queries want the processor, and an expression that holds a thread for a
//!   whole batch (which a timeout cannot cut short) pins a general thread,
//!   never the threads that answer other users' requests.
//!
//! The query's plan is executed and polled on its lane's runtime (the tasks its
//! operators spawn land there too); its batches come back through a bounded
//! channel. Dropping the returned stream (the client went, a cancel, a limit)
//! aborts the work there; so does the query's stop (its cancel or timeout),
//! even while nobody reads; a panic there ends the query with an error, as on
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

/// The runtimes queries run on, by lane; a lane without one runs its
/// queries on the calling (main) runtime.
#[derive(Debug)]
pub struct Lanes {
    light: Option<LaneRuntime>,
    general: Option<LaneRuntime>,
}

impl Lanes {
    /// `light_threads` for light queries, `general_threads` at `general_nice`
    /// for the others (0 threads: that lane runs on the main runtime).
    pub fn new(
        light_threads: usize,
        general_threads: usize,
        general_nice: i32,
    ) -> std::io::Result<Self> {
        Ok(Self {
            light: LaneRuntime::new(light_threads, "citylake-light", 0)?,
            general: LaneRuntime::new(general_threads, "citylake-general", general_nice)?,
        })
    }

    /// Executes `plan` in its lane (`light` or general); see
    /// [`LaneRuntime::execute`].
    pub fn execute(
        &self,
        light: bool,
        plan: Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> DfResult<SendableRecordBatchStream> {
        match if light { &self.light } else { &self.general } {
            Some(runtime) => Ok(runtime.execute(plan, context, stop)),
            None => datafusion::physical_plan::execute_stream(plan, context),
        }
    }
}

/// A lane's runtime; shut down (without waiting) when dropped.
#[derive(Debug)]
pub struct LaneRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl LaneRuntime {
    /// A runtime of `threads` worker threads named `name`, at `nice` (Linux:
    /// the scheduling priority of each of its threads, 0 normal to 19 lowest,
    /// its blocking threads included; elsewhere ignored); none for 0 threads.
    pub fn new(threads: usize, name: &str, nice: i32) -> std::io::Result<Option<Self>> {
        if threads == 0 {
            return Ok(None);
        }
        if !(0..=19).contains(&nice) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a nice value is 0 (normal) to 19 (lowest), not {nice}"),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            // as deep as the main runtime's: executing a deep plan recurses too
            // (the 2 MiB default overflowed on a red-team statement: the process died)
            .thread_stack_size(crate::THREAD_STACK_SIZE)
            .on_thread_start(move || lower_priority(nice))
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

/// Lowers the calling thread's scheduling priority by `nice` (Linux, where
/// the nice value is a thread's; a failure is logged, not fatal: the thread
/// runs at the normal priority; elsewhere nothing is done).
fn lower_priority(nice: i32) {
    if nice == 0 || !cfg!(target_os = "linux") {
        return;
    }
    // relative to the process's own (a server started at nice 15 is not
    // raised, which would put the general lane ahead of the protocols)
    let nice = (current_nice() + nice).min(19);
    // thread-priority maps its 0–99 scale to the nice values 19 to -20 as
    // `floor(39 · (1 − p / 99)) − 20`; the p that gives `nice` (checked
    // against the thread's nice value by the tests)
    let Some(p) = (0..=99u8).find(|&p| (39.0 * (1.0 - f32::from(p) / 99.0)) as i32 - 20 == nice)
    else {
        tracing::warn!(nice, "no thread priority gives this nice value");
        return;
    };
    let set = thread_priority::ThreadPriorityValue::try_from(p)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(p),
            )
            .map_err(|e| e.to_string())
        });
    if let Err(error) = set {
        tracing::warn!(nice, %error, "could not lower a query thread's priority");
    }
}

/// The calling thread's nice value (Linux: `/proc/thread-self/stat`; 0
/// elsewhere or when it cannot be read).
pub fn current_nice() -> i32 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| {
            // after the command name (in parentheses, which may hold spaces)
            // come the fields from the 3rd on; the nice value is the 19th
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .unwrap_or(0)
}

impl Drop for LaneRuntime {
    fn drop(&mut self) {
        // dropped inside the main runtime at shutdown: no blocking wait there
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The results of a query running on a lane's runtime.
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
    async fn a_lanes_threads_run_at_its_priority() {
        let before = current_nice();
        let lane = LaneRuntime::new(2, "test-low", 7).unwrap().unwrap();
        let handle = lane.runtime.as_ref().unwrap().handle().clone();
        let worker = handle
            .spawn(async {
                (
                    current_nice(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
        let blocking = handle.spawn_blocking(current_nice).await.unwrap();
        // (a test run at a lower priority already cannot be checked this way)
        if cfg!(target_os = "linux") && before == 0 {
            assert_eq!(worker.0, 7);
            assert_eq!(blocking, 7, "blocking threads (file reads) too");
        }
        // this thread, outside the lane, is untouched
        assert_eq!(current_nice(), before);
        // every nice value a lane may be given is the one its threads get
        if cfg!(target_os = "linux") && before == 0 {
            for nice in 0..=19 {
                let got = std::thread::spawn(move || {
                    lower_priority(nice);
                    current_nice()
                })
                .join()
                .unwrap();
                assert_eq!(got, nice);
            }
        }
        assert_eq!(worker.1.as_deref(), Some("test-low"));
        // nonsense is refused, not clamped
        for nice in [-5, 20] {
            let e = LaneRuntime::new(1, "test", nice).unwrap_err();
            assert!(e.to_string().contains("0 (normal) to 19"), "{e}");
        }
        assert!(LaneRuntime::new(0, "test", 10).unwrap().is_none());
    }

    #[tokio::test]
    async fn results_errors_and_drops_cross_the_runtimes() {
        let light = LaneRuntime::new(1, "test-lane", 0).unwrap().unwrap();
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
