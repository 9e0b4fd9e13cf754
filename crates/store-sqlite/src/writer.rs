//! The single writer: one thread owns the write connection and commits waiting writes in groups.
//!
//! Why: SQLite allows one writer at a time, and each COMMIT is the expensive part of a small write
//! (the WAL append and its locking). When every request took the connection in turn from the
//! blocking pool, 32 concurrent writers queued on an unfair lock (p99 of a second) and each paid a
//! COMMIT of its own. Here callers queue in FIFO order on a channel; the writer takes every job
//! waiting (up to [`GROUP_CAP`]), runs each inside its own SAVEPOINT of one `BEGIN IMMEDIATE`
//! transaction, and COMMITs once for the group.
//!
//! Isolation between jobs of a group: a job that fails (or panics) is rolled back to its savepoint
//! alone and answered with its error; the others keep their changes. A job sees the (uncommitted)
//! changes of the jobs before it in its group, exactly as if they had committed just before it.
//!
//! Durability: a caller is answered only after its group's COMMIT returned (or with its own
//! error, its changes already rolled back). So a crash can lose only writes that were never
//! acknowledged; with WAL and `synchronous=NORMAL` a returned COMMIT survives a process crash. If
//! the COMMIT itself fails, the whole group is rolled back and every job gets that error.
//!
//! Jobs that cannot share a transaction (a WAL checkpoint; DDL, VACUUM or backup if ever needed)
//! are sent with [`Writer::alone`] and run outside any transaction, between groups.
//!
//! Work deferred to the end of a group: the store gives the writer a [`BeforeCommit`] step that
//! runs once per group, after its last job and before its COMMIT, in the same transaction (the
//! store brings its free-text index up to date there, once for the group rather than once per
//! job). If it fails, the group is rolled back whole and every job gets the error, as for a failed
//! COMMIT. After an alone job the step runs too, in a transaction of its own, before the job is
//! answered.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use idvault_core::error::{Error, Result};

/// Most jobs committed together: bounds how long the first job of a group waits for the last one
/// (a group runs jobs back to back, then commits once).
const GROUP_CAP: usize = 64;

/// A caller's write and the channel its answer goes back on.
trait Work: Send {
    /// Runs the write; its answer is held until the group's outcome is known.
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran;
    /// Answers without running (the group could not start).
    fn refuse(self: Box<Self>, e: Error);
}

struct Pending<T, F> {
    f: F,
    answer: oneshot::Sender<Result<T>>,
}

impl<T, F> Work for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran {
        let Pending { f, answer } = *self;
        let result = f(conn);
        let ok = result.is_ok();
        Ran {
            ok,
            answer: Box::new(move |group: std::result::Result<(), &Error>| {
                // A failed job's changes are gone whatever the group does: it gets its own error.
                let result = match (result, group) {
                    (Ok(_), Err(e)) => Err(Error::Storage(format!("commit failed: {e}"))),
                    (result, _) => result,
                };
                // The caller may have gone away (request cancelled): nothing to tell it.
                let _ = answer.send(result);
            }),
        }
    }

    fn refuse(self: Box<Self>, e: Error) {
        let _ = self.answer.send(Err(e));
    }
}

type Answer = Box<dyn FnOnce(std::result::Result<(), &Error>) + Send>;

/// Runs at the end of every group, inside its transaction, just before COMMIT.
pub(crate) type BeforeCommit = Box<dyn Fn(&Connection) -> Result<()> + Send>;

/// What a job leaves after running: whether it succeeded, and how to answer its caller once the
/// group's outcome is known (`Ok` when the group committed).
struct Ran {
    ok: bool,
    answer: Answer,
}

enum Job {
    /// Runs in a savepoint of the current group's transaction.
    Grouped(Box<dyn Work>),
    /// Runs alone, outside any transaction, and is answered at once.
    Alone(Box<dyn Work>),
}

/// The sending side; the writer thread ends when this is dropped (with the store).
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `conn` to a new writer thread, which runs `before_commit` at the end of every group.
    pub(crate) fn start(conn: Connection, before_commit: BeforeCommit) -> Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("idvault-sqlite-writer".into())
            .spawn(move || run_writer(conn, queue, before_commit))
            .map_err(|e| Error::Internal(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in the next group; answers once that group is committed.
    pub(crate) async fn grouped<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, rx) = oneshot::channel();
        self.send(Job::Grouped(Box::new(Pending { f, answer })), rx).await
    }

    /// Runs `f` on the writer connection outside any transaction, between groups.
    pub(crate) async fn alone<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, rx) = oneshot::channel();
        self.send(Job::Alone(Box::new(Pending { f, answer })), rx).await
    }

    async fn send<T>(&self, job: Job, answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        self.jobs.send(job).map_err(|_| Error::Internal("the SQLite writer has stopped".into()))?;
        // A dropped sender means the job panicked (its savepoint was rolled back).
        answer.await.unwrap_or_else(|_| Err(Error::Internal("write failed unexpectedly".into())))
    }
}

fn run_writer(mut conn: Connection, queue: mpsc::Receiver<Job>, before_commit: BeforeCommit) {
    let mut group: Vec<Box<dyn Work>> = Vec::with_capacity(GROUP_CAP);
    // A job taken from the queue that must run after the current group.
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return, // the store was dropped
            },
        };
        match first {
            Job::Alone(work) => {
                if let Ok(ran) = catch_unwind(AssertUnwindSafe(|| work.run(&mut conn))) {
                    // The job's own changes are committed whatever this answers; a failed step
                    // leaves its work for the next group (e.g. rows still noted for the index).
                    let after = finish_alone(&conn, &before_commit);
                    (ran.answer)(after.as_ref().map(|_| ()));
                }
                continue;
            }
            Job::Grouped(work) => group.push(work),
        }
        while group.len() < GROUP_CAP {
            match queue.try_recv() {
                Ok(Job::Grouped(work)) => group.push(work),
                Ok(alone) => {
                    next = Some(alone);
                    break;
                }
                Err(_) => break,
            }
        }
        run_group(&mut conn, &mut group, &before_commit);
    }
}

/// One transaction for every job in `group`, each in its own savepoint; answers them all.
fn run_group(conn: &mut Connection, group: &mut Vec<Box<dyn Work>>, before_commit: &BeforeCommit) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let e = crate::storage_err(e);
        tracing::error!(error = %e, "a write group could not start");
        for work in group.drain(..) {
            work.refuse(Error::Storage(e.to_string()));
        }
        return;
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
    let mut works = group.drain(..);
    for work in works.by_ref() {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            work.refuse(crate::storage_err(e));
            break;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| work.run(conn)));
        let ok = matches!(&ran, Ok(ran) if ran.ok);
        // ROLLBACK TO undoes the job but leaves its savepoint open; RELEASE then closes it.
        let ended = if ok {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        };
        match ran {
            Ok(ran) => answers.push(ran.answer),
            // Its answer was dropped while unwinding: its caller got an internal error.
            Err(_) => tracing::error!("a write panicked; its changes were rolled back"),
        }
        if let Err(e) = ended {
            // The transaction is in an unknown state: nothing in it can be trusted.
            for work in works.by_ref() {
                work.refuse(Error::Storage(format!("write group failed: {e}")));
            }
            return abandon(conn, answers, crate::storage_err(e));
        }
    }
    // Jobs left behind by a failed SAVEPOINT (the loop stopped early).
    for work in works {
        work.refuse(Error::Internal("write group failed".into()));
    }
    if let Err(e) = run_before_commit(conn, before_commit) {
        return abandon(conn, answers, e);
    }
    match exec(conn, "COMMIT") {
        Ok(()) => answers.into_iter().for_each(|answer| answer(Ok(()))),
        Err(e) => abandon(conn, answers, crate::storage_err(e)),
    }
}

/// The step, with a panic in it turned into an error (the writer thread must go on).
fn run_before_commit(conn: &Connection, before_commit: &BeforeCommit) -> Result<()> {
    catch_unwind(AssertUnwindSafe(|| before_commit(conn)))
        .unwrap_or_else(|_| Err(Error::Internal("the end of a write group failed unexpectedly".into())))
}

/// The end-of-group step after an alone job, in a transaction of its own.
fn finish_alone(conn: &Connection, before_commit: &BeforeCommit) -> Result<()> {
    if !conn.is_autocommit() {
        // The job left a transaction open against its contract: nothing in it can be trusted.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(Error::Internal("a write left its transaction open".into()));
    }
    exec(conn, "BEGIN IMMEDIATE").map_err(crate::storage_err)?;
    let done = run_before_commit(conn, before_commit)
        .and_then(|()| exec(conn, "COMMIT").map_err(crate::storage_err));
    if done.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// Runs a statement without rows through the statement cache (these run several times per group;
/// `execute_batch` would parse them each time).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls the whole group back and gives every job that ran the error.
fn abandon(conn: &Connection, answers: Vec<Answer>, e: Error) {
    tracing::error!(error = %e, "a write group failed; every write in it was rolled back");
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    answers.into_iter().for_each(|answer| answer(Err(&e)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    type TestJob<T> = Box<dyn FnOnce(&mut Connection) -> Result<T> + Send>;

    /// A writer on a fresh WAL database with tables `t(id, v)` and a deferred foreign key
    /// `child(p -> parent)` (checked only at COMMIT), plus a path to open readers on.
    fn writer() -> (tempfile::TempDir, std::path::PathBuf, Arc<Writer>) {
        writer_with(Box::new(|_| Ok(())))
    }

    /// [`writer`] with an end-of-group step.
    fn writer_with(before_commit: BeforeCommit) -> (tempfile::TempDir, std::path::PathBuf, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TABLE group_ends (rows_seen INTEGER NOT NULL);",
        )
        .unwrap();
        (dir, path, Arc::new(Writer::start(conn, before_commit).unwrap()))
    }

    fn insert(id: i64) -> impl FnOnce(&mut Connection) -> Result<i64> + Send + 'static {
        move |c: &mut Connection| {
            c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [id]).map_err(crate::storage_err)?;
            Ok(id)
        }
    }

    fn ids(path: &std::path::Path) -> Vec<i64> {
        let c = Connection::open(path).unwrap();
        let mut s = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// Holds the writer inside a job until the returned sender is dropped or sent to, so that the
    /// writes queued meanwhile are taken together as one group.
    async fn hold(writer: &Arc<Writer>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let w = writer.clone();
        let held = tokio::spawn(async move {
            w.grouped(move |_| {
                started.send(()).unwrap();
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap()
        });
        running.await.unwrap();
        (release, held)
    }

    /// Queues each write (its first poll sends it) before returning.
    async fn queue<T: Send + 'static>(
        writer: &Arc<Writer>,
        jobs: Vec<TestJob<T>>,
    ) -> Vec<tokio::task::JoinHandle<Result<T>>> {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|f| {
                let w = writer.clone();
                tokio::spawn(async move { w.grouped(f).await })
            })
            .collect();
        // On a current-thread runtime each spawned task runs up to its await before this resumes.
        tokio::task::yield_now().await;
        handles
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_concurrent_writes_all_land() {
        let (_dir, path, writer) = writer();
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let w = writer.clone();
                tokio::spawn(async move { w.grouped(insert(i)).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as i64);
        }
        assert_eq!(ids(&path), (0..500).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_is_undone_alone_and_gets_its_own_error() {
        let (_dir, path, writer) = writer();
        let (release, held) = hold(&writer).await;
        let failing: TestJob<i64> = Box::new(|c| {
            insert(2)(c)?;
            Err(Error::UserNotFound)
        });
        let duplicate: TestJob<i64> = Box::new(|c| {
            insert(4)(c)?;
            insert(1)(c) // already written by the first job of the group
        });
        let handles =
            queue(&writer, vec![Box::new(insert(1)), failing, Box::new(insert(3)), duplicate]).await;
        drop(release);
        held.await.unwrap();
        let results: Vec<_> = futures_join(handles).await;
        assert_eq!(results[0].as_ref().unwrap(), &1);
        assert!(matches!(results[1], Err(Error::UserNotFound)), "{:?}", results[1]);
        assert_eq!(results[2].as_ref().unwrap(), &3);
        assert!(matches!(results[3], Err(Error::Storage(_))), "{:?}", results[3]);
        assert_eq!(ids(&path), vec![1, 3]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_write_is_undone_and_the_writer_goes_on() {
        let (_dir, path, writer) = writer();
        let (release, held) = hold(&writer).await;
        let panicking: TestJob<i64> = Box::new(|c| {
            insert(2)(c)?;
            panic!("a bug in a write");
        });
        let handles = queue(&writer, vec![Box::new(insert(1)), panicking, Box::new(insert(3))]).await;
        drop(release);
        held.await.unwrap();
        let results: Vec<_> = futures_join(handles).await;
        assert_eq!(results[0].as_ref().unwrap(), &1);
        assert!(matches!(results[1], Err(Error::Internal(_))), "{:?}", results[1]);
        assert_eq!(results[2].as_ref().unwrap(), &3);
        assert_eq!(writer.grouped(insert(4)).await.unwrap(), 4);
        assert_eq!(ids(&path), vec![1, 3, 4]);
    }

    /// A group whose COMMIT fails (here a deferred foreign key) is rolled back whole, and every
    /// write in it hears so: none was acknowledged.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_commit_fails_every_write_of_the_group() {
        let (_dir, path, writer) = writer();
        let (release, held) = hold(&writer).await;
        let orphan: TestJob<i64> = Box::new(|c| {
            c.execute("INSERT INTO child (p) VALUES (99)", []).map_err(crate::storage_err)?;
            Ok(0)
        });
        let handles = queue(&writer, vec![Box::new(insert(1)), orphan]).await;
        drop(release);
        held.await.unwrap();
        for result in futures_join(handles).await {
            assert!(matches!(result, Err(Error::Storage(_))), "{result:?}");
        }
        assert_eq!(ids(&path), Vec::<i64>::new());
        assert_eq!(writer.grouped(insert(5)).await.unwrap(), 5);
        assert_eq!(ids(&path), vec![5]);
    }

    /// An end-of-group step that notes how many rows of `t` it saw, and fails when `t` holds 13.
    fn noting_step() -> BeforeCommit {
        Box::new(|c| {
            let unlucky: bool = c
                .query_row("SELECT EXISTS(SELECT 1 FROM t WHERE id = 13)", [], |r| r.get(0))
                .map_err(crate::storage_err)?;
            if unlucky {
                return Err(Error::Storage("the end of the group failed".into()));
            }
            c.execute("INSERT INTO group_ends (rows_seen) SELECT COUNT(*) FROM t", [])
                .map(drop)
                .map_err(crate::storage_err)
        })
    }

    fn group_ends(path: &std::path::Path) -> Vec<i64> {
        let c = Connection::open(path).unwrap();
        let mut s = c.prepare("SELECT rows_seen FROM group_ends ORDER BY rowid").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// The step runs once per group, after all of its jobs and in its transaction (what it writes
    /// is committed with them), and once after an alone job.
    #[tokio::test(flavor = "current_thread")]
    async fn the_before_commit_step_runs_once_per_group_after_its_jobs() {
        let (_dir, path, writer) = writer_with(noting_step());
        let (release, held) = hold(&writer).await;
        let handles = queue(&writer, (1..=5).map(|i| Box::new(insert(i)) as TestJob<i64>).collect()).await;
        drop(release);
        held.await.unwrap();
        for (i, r) in futures_join(handles).await.into_iter().enumerate() {
            assert_eq!(r.unwrap(), i as i64 + 1);
        }
        // The holding job's group saw no row; the five queued writes made one group.
        assert_eq!(group_ends(&path), vec![0, 5]);
        writer.alone(|c| insert(6)(c)).await.unwrap();
        assert_eq!(group_ends(&path), vec![0, 5, 6]);
    }

    /// A failing step rolls the whole group back and every write in it gets the error; the
    /// writer goes on with the next group.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_before_commit_step_fails_every_write_of_the_group() {
        let (_dir, path, writer) = writer_with(noting_step());
        let (release, held) = hold(&writer).await;
        let handles = queue(
            &writer,
            vec![Box::new(insert(1)) as TestJob<i64>, Box::new(insert(13)), Box::new(insert(3))],
        )
        .await;
        drop(release);
        held.await.unwrap();
        for result in futures_join(handles).await {
            assert!(
                matches!(&result, Err(Error::Storage(m)) if m.contains("the end of the group failed")),
                "{result:?}"
            );
        }
        assert_eq!(ids(&path), Vec::<i64>::new());
        assert_eq!(group_ends(&path), vec![0]);
        assert_eq!(writer.grouped(insert(5)).await.unwrap(), 5);
        assert_eq!(ids(&path), vec![5]);
        assert_eq!(group_ends(&path), vec![0, 1]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_is_visible_to_a_new_reader_once_answered() {
        let (_dir, path, writer) = writer();
        let reader = Connection::open(&path).unwrap();
        for id in 0..20 {
            writer.grouped(insert(id)).await.unwrap();
            let seen: i64 = reader.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(seen, id + 1);
        }
    }

    /// Work that cannot share a transaction runs alone: a checkpoint succeeds, and writes queued
    /// before it are in the file it leaves.
    #[tokio::test(flavor = "current_thread")]
    async fn alone_runs_outside_any_transaction() {
        let (_dir, path, writer) = writer();
        let handles = queue(&writer, vec![Box::new(insert(1)), Box::new(insert(2))]).await;
        let busy: i64 = writer
            .alone(|c| {
                assert!(c.is_autocommit());
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).map_err(crate::storage_err)
            })
            .await
            .unwrap();
        assert_eq!(busy, 0);
        for r in futures_join(handles).await {
            r.unwrap();
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert_eq!(std::fs::metadata(std::path::PathBuf::from(wal)).unwrap().len(), 0);
        assert_eq!(ids(&path), vec![1, 2]);
    }

    async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
