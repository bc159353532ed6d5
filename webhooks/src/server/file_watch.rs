//! Files read again and again while serving: the serving certificate ([`super::tls`]), the client CA
//! bundle ([`super::client_ca`]), `--policy-dir` and `--trusted-root` ([`super::reload`]).
//!
//! Kubernetes updates a mounted Secret or ConfigMap by swapping a `..data` symlink, which file watches on
//! the file itself miss; so the CONTENTS of the configured paths are polled on a blocking thread and
//! compared with those last looked at. New content is put in force only once it is good; content that is
//! not keeps the last good in force and is reported once, not at every poll.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};

/// Why a file could not be read whole within its bound.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// The file is larger than anything it should be.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The bound.
        max: u64,
    },
}

/// The whole of `path`, if it is at most `max` bytes (never more than `max + 1` bytes are read).
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(bytes)
}

/// What one poll of a reloaded file found.
#[derive(Debug)]
pub enum ReloadOutcome<E> {
    /// Same contents as last time.
    Unchanged,
    /// New, good content is now in force.
    Reloaded,
    /// The file changed but the new content is unusable (or the file cannot be read); the previous
    /// content stays in force.
    Rejected(E),
}

/// Content read from files and put in force while serving: the content in force, swapped atomically; the
/// SHA-256 of the file contents last looked at, good or bad, so that bad content is reported once; and
/// how often new content was taken or refused.
pub(crate) struct Reloading<T> {
    current: ArcSwap<T>,
    seen: Mutex<[u8; 32]>,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
}

impl<T> Reloading<T> {
    /// `content`, read from files whose contents hash to `contents`, in force.
    pub(crate) fn new(content: T, contents: [u8; 32]) -> Self {
        Self {
            current: ArcSwap::from_pointee(content),
            seen: Mutex::new(contents),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
        }
    }

    /// The content in force.
    pub(crate) fn current(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// The content in force, to keep.
    pub(crate) fn current_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Read the files (`read` gives what it read and the hash of the contents) and, if the contents are
    /// not the ones last looked at, `parse` them and put the result in force when good. Files that cannot
    /// be read (e.g. in the middle of a swap) are reported at every poll until they read again.
    pub(crate) fn reload_if_changed<B, E>(
        &self,
        read: impl FnOnce() -> Result<(B, [u8; 32]), E>,
        parse: impl FnOnce(B) -> Result<T, E>,
    ) -> ReloadOutcome<E> {
        let Ok(mut seen) = self.seen.lock() else {
            return ReloadOutcome::Unchanged;
        };
        let (bytes, contents) = match read() {
            Ok(read) => read,
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                return ReloadOutcome::Rejected(e);
            }
        };
        if contents == *seen {
            return ReloadOutcome::Unchanged;
        }
        *seen = contents;
        match parse(bytes) {
            Ok(content) => {
                self.current.store(Arc::new(content));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Reloaded
            }
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Rejected(e)
            }
        }
    }

    /// Successful reloads since start.
    pub(crate) fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Rejected new content (or unreadable files) since start.
    pub(crate) fn reload_errors(&self) -> u64 {
        self.reload_errors.load(Ordering::Relaxed)
    }
}

/// A file read again and again while serving, whose last good content stays in force.
pub(crate) trait ReloadedFile: Send + Sync + 'static {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Why new content was refused.
    type Error: std::fmt::Display + Send + 'static;
    /// Read it again; use the new content if it changed and is good.
    fn reload_if_changed(&self) -> ReloadOutcome<Self::Error>;
    /// Where it is read from.
    fn path(&self) -> &Path;
    /// What is in force now, for logs (never secret).
    fn in_force(&self) -> String;
}

/// Poll `file` every `interval` until the returned task is aborted, logging every change.
pub(crate) fn spawn_reload_watch<F: ReloadedFile>(
    file: &Arc<F>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let (this, report) = (Arc::clone(file), Arc::clone(file));
    spawn_polling(
        interval,
        F::WHAT,
        move || this.reload_if_changed(),
        move |outcome| {
            let (what, path) = (F::WHAT, report.path().display());
            // Described only when something changed (a leaf fingerprint is a SHA-256 per poll otherwise).
            match outcome {
                ReloadOutcome::Unchanged => {}
                ReloadOutcome::Reloaded => {
                    tracing::info!(what, path = %path, in_force = report.in_force(), "reloaded")
                }
                ReloadOutcome::Rejected(e) => tracing::error!(
                    what,
                    path = %path,
                    error = %e,
                    in_force = report.in_force(),
                    "new content rejected; the previous one stays in force"
                ),
            }
        },
    )
}

/// Run `poll` (which reads files) on a blocking thread every `interval`, after a first wait, and hand each
/// outcome to `report`, until the returned task is aborted. `what` names the files in an error log.
pub(crate) fn spawn_polling<T: Send + 'static>(
    interval: Duration,
    what: &'static str,
    poll: impl Fn() -> T + Send + Sync + 'static,
    mut report: impl FnMut(T) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let poll = Arc::new(poll);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let poll = Arc::clone(&poll);
            match tokio::task::spawn_blocking(move || poll()).await {
                Ok(outcome) => report(outcome),
                Err(e) => tracing::error!(error = %e, what, "reload task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// Reads `file`; the content is its text, which parses when it is not "bad".
    fn poll(state: &Reloading<String>, file: &Path) -> ReloadOutcome<String> {
        state.reload_if_changed(
            || {
                let bytes = read_bounded(file, 16).map_err(|e| e.to_string())?;
                let hash = Sha256::digest(&bytes).into();
                Ok((bytes, hash))
            },
            |bytes| match String::from_utf8(bytes) {
                Ok(text) if text != "bad" => Ok(text),
                _ => Err("bad content".to_owned()),
            },
        )
    }

    #[test]
    fn bad_content_is_refused_once_and_an_unreadable_file_at_every_poll() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "one").unwrap();
        let state = Reloading::new("one".to_owned(), Sha256::digest(b"one").into());
        assert!(matches!(poll(&state, &file), ReloadOutcome::Unchanged));

        std::fs::write(&file, "bad").unwrap();
        assert!(matches!(poll(&state, &file), ReloadOutcome::Rejected(_)));
        assert!(matches!(poll(&state, &file), ReloadOutcome::Unchanged), "the same bad content: not again");
        assert_eq!(state.current().as_str(), "one");

        std::fs::remove_file(&file).unwrap();
        for _ in 0..2 {
            match poll(&state, &file) {
                ReloadOutcome::Rejected(e) => assert!(e.starts_with("cannot read: "), "{e}"),
                other => panic!("an unreadable file is reported at every poll, got {other:?}"),
            }
        }
        std::fs::write(&file, "more than sixteen bytes").unwrap();
        match poll(&state, &file) {
            ReloadOutcome::Rejected(e) => assert_eq!(e, "larger than 16 bytes"),
            other => panic!("{other:?}"),
        }

        std::fs::write(&file, "two").unwrap();
        assert!(matches!(poll(&state, &file), ReloadOutcome::Reloaded));
        assert_eq!(state.current_full().as_str(), "two");
        assert_eq!((state.reloads(), state.reload_errors()), (1, 4));
    }
}
