//! The one durable store of the state directory: an SQLite file (`prismwatch.db`) that holds
//! what must survive a `kill -9`: the notification outbox, the notification log, silences and
//! the active alerts (and, later, the remediation audit log and history snapshots).
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a committed change survives a power loss,
//! not only a crash of the process. Every change is committed when it happens, never on a timer.
//! One thread owns the connection (the one writer); callers send it closures over a channel and
//! async callers await the reply, so the runtime never blocks on the disk.
//!
//! A store that cannot be written does not stop the daemon: the failure is returned to the
//! caller, counted (`prismwatch_store_errors_total`), and the store reports itself unhealthy
//! (which `/readyz` shows) until a write succeeds again.

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::{error, info};

pub use migrations::{MIGRATIONS, Migration};

/// The store's file name inside the state directory.
pub const FILE_NAME: &str = "prismwatch.db";

/// How long a statement waits for a lock held by a reader (the `sqlite3` CLI, a backup).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or set up.
    #[error(
        "cannot open the state store {path}: {cause}; check that the state directory exists, is writable by the daemon and is not full (or choose another with --state-dir)"
    )]
    Open { path: PathBuf, cause: String },
    /// A statement failed (disk full, read-only file system, corruption).
    #[error(
        "cannot write the state store {path}: {cause}; free space or make the state directory writable; the daemon keeps running and retries at the next change"
    )]
    Write {
        path: PathBuf,
        #[source]
        cause: rusqlite::Error,
    },
    /// The store's thread has stopped (only during shutdown).
    #[error("the state store {path} is closed")]
    Closed { path: PathBuf },
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The result of a job queued with [`Store::submit`].
pub type Pending<R> = oneshot::Receiver<Result<R, StoreError>>;

/// Called with the store's new health when it changes.
type HealthHook = Box<dyn Fn(bool) + Send>;

/// A handle to the store's writer thread. Cheap to clone; the thread stops when the last
/// handle is dropped (after finishing the jobs already sent).
#[derive(Clone)]
pub struct Store {
    jobs: std_mpsc::Sender<Job>,
    path: Arc<PathBuf>,
    health: Arc<Health>,
}

/// Whether the last write succeeded, and who wants to know when that changes.
struct Health {
    healthy: AtomicBool,
    on_change: std::sync::Mutex<Option<HealthHook>>,
}

impl Store {
    /// Opens (or creates) the store in `state_dir` and applies pending migrations.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        Store::open_file(&state_dir.join(FILE_NAME))
    }

    /// Opens (or creates) the store at `path`.
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            path: path.to_path_buf(),
            cause,
        };
        let connection = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        configure(&connection).map_err(|e| open_error(e.to_string()))?;
        Store::start(connection, path)
    }

    /// A store in memory, for when the state directory cannot hold one: the daemon keeps
    /// delivering, but a restart loses what is queued (and `/readyz` says so).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = Path::new(":memory:");
        let connection = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })?;
        Store::start(connection, path)
    }

    fn start(mut connection: Connection, path: &Path) -> Result<Store, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            path: path.to_path_buf(),
            cause,
        };
        let applied = migrations::apply(&mut connection, MIGRATIONS).map_err(open_error)?;
        if applied > 0 {
            info!(path = %path.display(), applied, "State store schema updated.");
        }
        let (jobs, receiver) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("prismwatch-store".into())
            .spawn(move || {
                // One writer: jobs run in the order they were sent.
                while let Ok(job) = receiver.recv() {
                    job(&mut connection);
                }
                // Dropping the connection checkpoints the WAL when it is the last one.
                drop(connection);
            })
            .map_err(|e| open_error(format!("cannot start the store thread: {e}")))?;
        Ok(Store {
            jobs,
            path: Arc::new(path.to_path_buf()),
            health: Arc::new(Health {
                healthy: AtomicBool::new(true),
                on_change: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last job succeeded.
    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Relaxed)
    }

    /// Calls `hook` with the new health each time it changes (e.g. to update readiness).
    pub fn on_health_change(&self, hook: impl Fn(bool) + Send + 'static) {
        if let Ok(mut slot) = self.health.on_change.lock() {
            *slot = Some(Box::new(hook));
        }
    }

    /// Runs `job` on the writer thread and awaits its result. A job that should be atomic
    /// opens a transaction itself (`connection.transaction()`).
    pub async fn call<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let answer = self.submit(job)?;
        answer.await.map_err(|_| self.closed())?
    }

    /// Queues `job` without waiting for it; await the receiver for its result. Jobs run in
    /// the order they are queued, so a caller that queues while holding a lock orders its
    /// writes by that lock.
    pub fn submit<R, F>(&self, job: F) -> Result<Pending<R>, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.send(job, move |result| {
            let _ = reply.send(result);
        })?;
        Ok(answer)
    }

    /// Runs `job` on the writer thread and waits for it, for callers outside the runtime.
    pub fn call_blocking<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.send(job, move |result| {
            let _ = reply.send(result);
        })?;
        answer.recv().map_err(|_| self.closed())?
    }

    fn send<R, F>(
        &self,
        job: F,
        reply: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let path = Arc::clone(&self.path);
        let health = Arc::clone(&self.health);
        let wrapped: Job = Box::new(move |connection| {
            let result = job(connection);
            let ok = result.is_ok();
            if !ok {
                metrics::counter!("prismwatch_store_errors_total").increment(1);
            }
            health.set(ok, &path, result.as_ref().err());
            reply(result.map_err(|cause| StoreError::Write {
                path: path.to_path_buf(),
                cause,
            }));
        });
        self.jobs.send(wrapped).map_err(|_| self.closed())
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: self.path.to_path_buf(),
        }
    }
}

impl Health {
    fn set(&self, ok: bool, path: &Path, error: Option<&rusqlite::Error>) {
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        if was == ok {
            return;
        }
        match error {
            Some(error) => error!(
                path = %path.display(),
                %error,
                "Cannot write the state store; what could not be written is retried, and /readyz reports not ready until a write succeeds."
            ),
            None => info!(path = %path.display(), "The state store is writable again."),
        }
        metrics::gauge!("prismwatch_store_healthy").set(if ok { 1.0 } else { 0.0 });
        if let Ok(hook) = self.on_change.lock()
            && let Some(hook) = hook.as_ref()
        {
            hook(ok);
        }
    }
}

/// Durability settings: WAL with full sync (a commit survives power loss), foreign keys.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the file system does not support WAL (journal mode stayed `{mode}`)"
        )));
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

#[cfg(test)]
mod tests;
