//! Resource limits: what one query may use, and how many run at once.
//!
//! - [`Limits`]: per query — wall-clock time, result rows and bytes, memory.
//!   Set globally (`EngineConfig::limits`, the server's flags) and per role in
//!   the policy (`query_timeout`, `max_result_rows`, `max_result_bytes`,
//!   `memory_per_query`); a role's setting replaces the global one, and of
//!   several roles the most generous applies.
//! - [`QueryPool`]: the memory pool a query's session sees — the engine's pool
//!   (whose total is `--memory-limit`; operators spill beyond it) with the
//!   query's own cap in front, tracking its peak.
//! - [`Admission`]: at most `max_concurrent` queries run; from three slots
//!   up, one of them is kept for the supervisors (the roles that read the
//!   audit log, see every query and cancel any), and one user holds all but
//!   one of the others at most; the next `queue` wait in arrival order (a
//!   fair semaphore); beyond that a query is refused at once
//!   (`RESOURCE_EXHAUSTED`).
//!
//! Each refusal names the limit and how to raise it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// Per-query limits; `None`: unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub query_timeout: Option<Duration>,
    pub max_result_rows: Option<u64>,
    pub max_result_bytes: Option<u64>,
    pub memory_per_query: Option<usize>,
}

impl Limits {
    /// These limits with a principal's role settings in place of the global ones.
    pub fn with_roles(&self, roles: &Limits) -> Limits {
        Limits {
            query_timeout: roles.query_timeout.or(self.query_timeout),
            max_result_rows: roles.max_result_rows.or(self.max_result_rows),
            max_result_bytes: roles.max_result_bytes.or(self.max_result_bytes),
            memory_per_query: roles.memory_per_query.or(self.memory_per_query),
        }
    }

    /// The most generous of two roles' settings (a setting one role leaves
    /// unset does not lift another's).
    pub fn most_generous(self, other: Limits) -> Limits {
        fn max<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        }
        Limits {
            query_timeout: max(self.query_timeout, other.query_timeout),
            max_result_rows: max(self.max_result_rows, other.max_result_rows),
            max_result_bytes: max(self.max_result_bytes, other.max_result_bytes),
            memory_per_query: max(self.memory_per_query, other.memory_per_query),
        }
    }
}

/// A query stopped by one of its limits. The message says which and how to
/// raise it.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(
        "query timeout: stopped after {0:?} (raise --query-timeout, or the role's query_timeout in the policy)"
    )]
    Timeout(Duration),
    #[error(
        "result too large: more than {0} rows (add a LIMIT, or raise --max-result-rows / the role's max_result_rows)"
    )]
    ResultRows(u64),
    #[error(
        "result too large: more than {0} bytes (select fewer rows or columns, or raise --max-result-bytes / the role's max_result_bytes)"
    )]
    ResultBytes(u64),
    #[error(
        "server busy: {running} queries running and {waiting} waiting, the most it accepts (retry later; the operator can raise --max-concurrent-queries / --query-queue)"
    )]
    Busy { running: usize, waiting: usize },
    #[error(
        "server busy: the ingest requests being received hold as much data as it keeps at once, {0} (retry later, or send smaller requests; the operator can raise --max-ingest-memory)"
    )]
    IngestMemory(bytesize::ByteSize),
    #[error(
        "busy: your ingest requests being received hold as much data as one user may at once, {0} (let one commit first, or send smaller requests)"
    )]
    IngestPerUser(bytesize::ByteSize),
    #[error(
        "ingest timeout: the batches did not all arrive within {0:?}, and nothing was written (send the data faster or in smaller requests; the operator can raise --ingest-timeout)"
    )]
    IngestTimeout(Duration),
}

impl LimitError {
    /// As a DataFusion error, so it travels through result streams.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The limit error at the root of `e`, if it is one.
    pub fn of(e: &DataFusionError) -> Option<&LimitError> {
        match e.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<LimitError>(),
            _ => None,
        }
    }
}

/// The engine's memory pool seen through one query's cap.
#[derive(Debug)]
pub struct QueryPool {
    inner: Arc<dyn MemoryPool>,
    limit: Option<usize>,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl QueryPool {
    pub fn new(inner: Arc<dyn MemoryPool>, limit: Option<usize>) -> Self {
        Self {
            inner,
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// The most memory the query held at once, in bytes.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        let now = self.used.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            Some(l) => write!(
                f,
                "query pool of {} over {}",
                crate::config::format_size(l as u64),
                self.inner
            ),
            None => write!(f, "query pool over {}", self.inner),
        }
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "citylake-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.add(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        if let Some(limit) = self.limit {
            let used = self.used.load(Ordering::Relaxed);
            if used + additional > limit {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "query memory limit of {} reached by {} ({} held, {} more asked); operators \
                     that can spill did; raise --memory-per-query or the role's memory_per_query",
                    crate::config::format_size(limit as u64),
                    reservation.consumer().name(),
                    crate::config::format_size(used as u64),
                    crate::config::format_size(additional as u64),
                )));
            }
        }
        self.inner.try_grow(reservation, additional)?;
        self.add(additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match (self.limit, self.inner.memory_limit()) {
            (Some(l), MemoryLimit::Finite(g)) => MemoryLimit::Finite(l.min(g)),
            (Some(l), _) => MemoryLimit::Finite(l),
            (None, inner) => inner,
        }
    }
}

/// How many queries run at once, and how many may wait.
#[derive(Debug)]
pub struct Admission {
    /// The slots anyone's queries take.
    slots: Arc<tokio::sync::Semaphore>,
    /// The slot kept for supervisors: [`Admission::reserved`].
    reserved: Arc<tokio::sync::Semaphore>,
    /// The slots only light queries take, besides the others: [`Admission::admit`].
    light: Arc<tokio::sync::Semaphore>,
    max_running: usize,
    max_reserved: usize,
    max_light: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    /// Most slots one user holds at once: [`Admission::per_user`].
    per_user: usize,
    /// Each user's share of the slots, and how many of theirs wait, by name.
    users: parking_lot::Mutex<std::collections::HashMap<String, UserShare>>,
}

#[derive(Debug, Clone)]
struct UserShare {
    slots: Arc<tokio::sync::Semaphore>,
    /// The user's share of the light slots.
    light: Arc<tokio::sync::Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// A running query's slot; released when dropped.
#[derive(Debug)]
pub struct Permit {
    _user: tokio::sync::OwnedSemaphorePermit,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Whether it is a light slot.
    light: bool,
}

impl Permit {
    /// Whether it is one of the light slots (only light queries may run in one).
    pub fn is_light(&self) -> bool {
        self.light
    }
}

impl Admission {
    /// `max_running` slots for any query (one of them kept for supervisors
    /// from three up), `max_light` more for light queries only, and a queue
    /// of `max_waiting`.
    pub fn new(max_running: usize, max_light: usize, max_waiting: usize) -> Self {
        let max_running = max_running.max(1);
        let max_reserved = Self::reserved(max_running);
        let shared = max_running - max_reserved;
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(shared)),
            reserved: Arc::new(tokio::sync::Semaphore::new(max_reserved)),
            light: Arc::new(tokio::sync::Semaphore::new(max_light)),
            max_running,
            max_reserved,
            max_light,
            max_waiting,
            waiting: AtomicUsize::new(0),
            per_user: Self::per_user(shared),
            users: Default::default(),
        }
    }

    /// Slots only supervisors' queries take: one from three slots up (as
    /// PostgreSQL's `superuser_reserved_connections`). However many users
    /// fill the other slots — two analysts whose clients stop reading their
    /// results once held every slot for a minute — a supervisor can still
    /// read `system.queries` and cancel what holds them.
    pub fn reserved(max_running: usize) -> usize {
        usize::from(max_running >= 3)
    }

    /// Most of the `shared` slots one user's queries hold at once: all but
    /// one (one user's long queries cannot hold every slot others run in). A
    /// user's further queries wait for one of their own to end, behind
    /// nobody else's; with one slot there is nothing to share.
    pub fn per_user(shared: usize) -> usize {
        shared.saturating_sub(1).max(1)
    }

    /// Most queries of one user that wait: half the queue (one user's
    /// queries cannot fill it and have everyone else's refused as busy).
    fn per_user_waiting(&self) -> usize {
        (self.max_waiting / 2).max(1)
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.max_running + self.max_light
            - self.slots.available_permits()
            - self.reserved.available_permits()
            - self.light.available_permits()
    }

    /// Queries waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a slot in arrival order — first for one of `user`'s share,
    /// then for one of the server's (a `supervisor`'s query also for the
    /// reserved one, whichever comes first) —, or refuses at once when the
    /// queue is full.
    ///
    /// A `light` query (one the session estimates small: few bytes of files
    /// to scan) may also take a light slot, whichever is free first, so that
    /// cockpit queries do not queue behind year-long scans. The light slots
    /// are shared like the others: one user holds at most all but one of
    /// them ([`Admission::per_user`]), so a query that scans little and
    /// computes much (the estimate is of bytes, not of work) cannot take
    /// every light slot either.
    pub async fn admit(
        &self,
        user: &str,
        supervisor: bool,
        light: bool,
    ) -> Result<Permit, LimitError> {
        let light = light && self.max_light > 0;
        let share = self
            .users
            .lock()
            .entry(user.to_string())
            .or_insert_with(|| UserShare {
                slots: Arc::new(tokio::sync::Semaphore::new(self.per_user)),
                light: Arc::new(tokio::sync::Semaphore::new(Self::per_user(self.max_light))),
                waiting: Arc::default(),
            })
            .clone();
        let free = || {
            self.slots.clone().try_acquire_owned().or_else(|e| {
                if supervisor {
                    self.reserved.clone().try_acquire_owned()
                } else {
                    Err(e)
                }
            })
        };
        if let Ok(mine) = share.slots.clone().try_acquire_owned()
            && let Ok(permit) = free()
        {
            return Ok(Permit {
                _user: mine,
                _permit: permit,
                light: false,
            });
        }
        if light
            && let Ok(mine) = share.light.clone().try_acquire_owned()
            && let Ok(permit) = self.light.clone().try_acquire_owned()
        {
            return Ok(Permit {
                _user: mine,
                _permit: permit,
                light: true,
            });
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let theirs = share.waiting.fetch_add(1, Ordering::SeqCst);
        // decremented however the wait ends (a refusal, a dropped request too)
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = (Waiting(&self.waiting), Waiting(&share.waiting));
        if waiting >= self.max_waiting || theirs >= self.per_user_waiting() {
            return Err(LimitError::Busy {
                running: self.running(),
                waiting,
            });
        }
        let any = async {
            let mine = share
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let shared = self.slots.clone().acquire_owned();
            let permit = if supervisor && self.max_reserved > 0 {
                // the first of the two; the other wait is dropped unserved
                tokio::select! {
                    p = shared => p,
                    p = self.reserved.clone().acquire_owned() => p,
                }
            } else {
                shared.await
            }
            .expect("the semaphore is never closed");
            Permit {
                _user: mine,
                _permit: permit,
                light: false,
            }
        };
        if !light {
            return Ok(any.await);
        }
        let lane = async {
            let mine = share
                .light
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let permit = self
                .light
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            Permit {
                _user: mine,
                _permit: permit,
                light: true,
            }
        };
        // whichever comes first; a permit the other wait took is given back
        Ok(tokio::select! {
            p = any => p,
            p = lane => p,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::UnboundedMemoryPool;

    #[test]
    fn the_query_cap_refuses_and_the_peak_is_kept() {
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(
            Arc::new(UnboundedMemoryPool::default()),
            Some(1000),
        ));
        let r = MemoryConsumer::new("sort").register(&pool);
        r.try_grow(600).unwrap();
        let err = r.try_grow(600).unwrap_err().to_string();
        assert!(
            err.contains("query memory limit of 1000 B") && err.contains("memory_per_query"),
            "{err}"
        );
        r.shrink(500);
        r.try_grow(800).unwrap();
        assert_eq!(pool.reserved(), 900);
        assert_eq!(pool.downcast_ref::<QueryPool>().unwrap().peak(), 900);
    }

    #[test]
    fn role_limits_replace_global_ones_and_the_most_generous_role_wins() {
        let global = Limits {
            query_timeout: Some(Duration::from_secs(60)),
            max_result_rows: Some(1000),
            ..Default::default()
        };
        let a = Limits {
            max_result_rows: Some(10),
            ..Default::default()
        };
        let b = Limits {
            max_result_rows: Some(50),
            memory_per_query: Some(1 << 20),
            ..Default::default()
        };
        let roles = a.most_generous(b);
        let l = global.with_roles(&roles);
        assert_eq!(l.max_result_rows, Some(50));
        assert_eq!(l.query_timeout, Some(Duration::from_secs(60)));
        assert_eq!(l.memory_per_query, Some(1 << 20));
    }

    #[tokio::test]
    async fn admission_queues_in_order_and_refuses_beyond_the_queue() {
        let a = Arc::new(Admission::new(1, 0, 1));
        let first = a.admit("ana", false, false).await.unwrap();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("dora", false, false).await.map(|_| ()) })
        };
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = a.admit("root", false, false).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("1 queries running and 1 waiting"),
            "{refused}"
        );
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(a.waiting(), 0);
    }

    async fn at_once(a: &Admission, user: &str, supervisor: bool) -> Permit {
        at_once_in(a, user, supervisor, false).await
    }

    async fn at_once_in(a: &Admission, user: &str, supervisor: bool, light: bool) -> Permit {
        tokio::time::timeout(Duration::from_secs(5), a.admit(user, supervisor, light))
            .await
            .expect("admitted at once")
            .unwrap()
    }

    async fn until_waiting(a: &Admission, n: usize) {
        while a.waiting() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn one_user_never_holds_every_slot() {
        // attack: an analyst fills every slot with endless scans
        let a = Arc::new(Admission::new(5, 0, 8));
        let mut hers = vec![];
        for _ in 0..3 {
            hers.push(a.admit("ana", false, false).await.unwrap());
        }
        let fourth = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("ana", false, false).await.map(|_| ()) })
        };
        until_waiting(&a, 1).await;
        assert_eq!(a.running(), 3);
        // another analyst still runs, at once: the fourth shared slot is not hers
        let dora = at_once(&a, "dora", false).await;
        assert!(!fourth.is_finished());
        drop(dora);
        // her own fourth runs when one of her three ends
        drop(hers.pop());
        fourth.await.unwrap().unwrap();
        assert_eq!(Admission::per_user(1), 1);
        assert_eq!(Admission::per_user(7), 6);
        assert_eq!(
            (0..5).map(Admission::reserved).collect::<Vec<_>>(),
            [0, 0, 0, 1, 1]
        );
        // nor fills the queue: half of it is hers at most, then she is refused, not others
        let a = Arc::new(Admission::new(2, 0, 4));
        let _running = a.admit("ana", false, false).await.unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.admit("ana", false, false).await.map(|_| ()) })
            })
            .collect();
        while a.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        let refused = a.admit("ana", false, false).await.unwrap_err();
        assert!(refused.to_string().contains("server busy"), "{refused}");
        let dora = tokio::time::timeout(Duration::from_secs(5), a.admit("dora", false, false))
            .await
            .expect("admitted at once")
            .unwrap();
        drop(dora);
        drop(_running);
        for q in queued {
            q.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn users_together_cannot_lock_the_supervisors_out() {
        // attack (red team): two analysts each start two queries whose
        // clients never read their results; with every slot theirs the
        // administrator's `SELECT 1` waited a minute, and nobody could see or
        // cancel what held the slots
        let a = Arc::new(Admission::new(4, 0, 8));
        let ana: Vec<_> = (0..2).map(|_| a.admit("ana", false, false)).collect();
        let ana = futures::future::join_all(ana).await;
        let dora = a.admit("dora", false, false).await.unwrap();
        let dora_second = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("dora", false, false).await.map(|_| ()) })
        };
        until_waiting(&a, 1).await;
        assert_eq!(a.running(), 3, "the shared slots are full");
        // a third analyst waits like everyone else ...
        let eve = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("eve", false, false).await.map(|_| ()) })
        };
        until_waiting(&a, 2).await;
        // ... the supervisor runs at once, in the kept slot
        let root = at_once(&a, "root", true).await;
        assert_eq!(a.running(), 4);
        // a second supervisor query waits for a slot, shared or kept, whichever is first
        let root_second = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("root", true, false).await.map(|_| ()) })
        };
        until_waiting(&a, 3).await;
        drop(root);
        root_second.await.unwrap().unwrap();
        assert!(!eve.is_finished() && !dora_second.is_finished());
        // the analysts' queries go on when theirs end
        drop(ana);
        dora_second.await.unwrap().unwrap();
        eve.await.unwrap().unwrap();
        drop(dora);
        assert_eq!((a.running(), a.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn light_queries_pass_heavy_ones_and_one_user_cannot_hold_the_light_slots() {
        // 3 slots for anything (one kept for supervisors), 3 for light queries
        let a = Arc::new(Admission::new(3, 3, 16));
        let admit = |user: &'static str, light: bool| {
            let a = a.clone();
            tokio::spawn(async move { a.admit(user, false, light).await.map(|_| ()) })
        };
        // year-long scans of two analysts hold the two shared slots; a third waits
        let scans = [
            a.admit("ana", false, false).await.unwrap(),
            a.admit("dora", false, false).await.unwrap(),
        ];
        let scan = admit("eve", false);
        until_waiting(&a, 1).await;
        // a cockpit query does not queue behind it: it takes a light slot
        let cockpit = at_once_light(&a, "eve").await;
        assert_eq!(a.running(), 3);
        drop(cockpit);
        // attack: a query that scans nothing and computes for hours is light
        // too; one user starting many holds all but one light slot ...
        let mut hers = vec![];
        for _ in 0..2 {
            hers.push(at_once_light(&a, "mallory").await);
        }
        let third = admit("mallory", true);
        until_waiting(&a, 2).await;
        // ... and another user's cockpit query still runs at once
        let dora = at_once_light(&a, "dora").await;
        assert!(!third.is_finished());
        drop(dora);
        // the waiting heavy query never takes a light slot
        assert!(!scan.is_finished());
        drop(scans);
        scan.await.unwrap().unwrap();
        drop(hers);
        third.await.unwrap().unwrap();
        assert_eq!((a.running(), a.waiting()), (0, 0));
        // without light slots a light query waits like any other
        let a = Arc::new(Admission::new(1, 0, 4));
        let held = a.admit("ana", false, false).await.unwrap();
        let light = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("dora", false, true).await.map(|_| ()) })
        };
        until_waiting(&a, 1).await;
        drop(held);
        light.await.unwrap().unwrap();
    }

    async fn at_once_light(a: &Admission, user: &str) -> Permit {
        at_once_in(a, user, false, true).await
    }
}
