//! Hot reload: watches the policy directory (recursively) and its parent (to see the
//! directory itself replaced, e.g. a symlink re-pointed as Kubernetes does for ConfigMaps),
//! coalesces bursts of changes, and reloads off the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{LivePolicies, Trigger};

/// Quiet time after the last change before a reload starts: one `git checkout` is one reload.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest a stream of changes can postpone a reload.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// Errors starting the watcher.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch policy directory `{dir}`: {message}")]
pub struct WatchError {
    dir: PathBuf,
    message: String,
}

#[derive(Debug, Clone, Copy)]
struct Change {
    /// The directory itself was replaced: watch its new target.
    rewatch: bool,
}

/// Starts watching `store`'s directory; reloads run until `shutdown` is cancelled.
pub fn watch(store: Arc<LivePolicies>, shutdown: CancellationToken) -> Result<(), WatchError> {
    let dir = std::path::absolute(store.dir()).map_err(|e| WatchError {
        dir: store.dir(),
        message: e.to_string(),
    })?;
    let parent = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let watched = dir.clone();
    let handler = move |result: notify::Result<Event>| match result {
        Ok(event) => {
            // Reading the directory (our own reloads do) must not trigger a reload.
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let mut change: Option<Change> = None;
            for path in &event.paths {
                if *path == watched {
                    change = Some(Change { rewatch: true });
                } else if path.starts_with(&watched) && relevant(path) {
                    change.get_or_insert(Change { rewatch: false });
                }
            }
            if let Some(c) = change {
                let _ = tx.send(c);
            }
        }
        Err(e) => tracing::warn!(error = %e, "policy watch error"),
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(|e| WatchError {
        dir: dir.clone(),
        message: e.to_string(),
    })?;
    watch_dir(&mut watcher, &dir);
    if let Err(e) = watcher.watch(&parent, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %parent.display(), error = %e, "cannot watch the policy directory's parent; a replaced directory will not be noticed");
    }

    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                change = rx.recv() => match change {
                    Some(c) => c,
                    None => break,
                },
            };
            // Debounce: wait for a quiet spell (bounded), folding every change into one reload.
            let mut rewatch = first.rewatch;
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            loop {
                let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(deadline);
                match tokio::time::timeout_at(quiet, rx.recv()).await {
                    Ok(Some(more)) => rewatch |= more.rewatch,
                    Ok(None) | Err(_) => break,
                }
            }
            tracing::debug!(rewatch, "policy directory changed");
            if rewatch {
                let _ = watcher.unwatch(&dir);
                watch_dir(&mut watcher, &dir);
            }
            super::reload_in_background(store.clone(), Trigger::Watch).await;
        }
    });
    Ok(())
}

fn watch_dir(watcher: &mut RecommendedWatcher, dir: &Path) {
    if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory; the last good set stays live");
    }
}

/// Files that make up a policy set, directories, and Kubernetes' `..data` swaps; not editor
/// swap and backup files.
fn relevant(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with("..") {
        return true;
    }
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("cedar" | "cedarschema" | "json" | "yaml" | "yml") => true,
        Some(_) => false,
        None => true, // a directory (created, removed or renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_editor_droppings() {
        assert!(relevant(Path::new("/p/a.cedar")));
        assert!(relevant(Path::new("/p/..data")));
        assert!(relevant(Path::new("/p/sub")));
        assert!(!relevant(Path::new("/p/.a.cedar.swp")));
        assert!(!relevant(Path::new("/p/a.cedar~")));
        assert!(!relevant(Path::new("/p/notes.txt")));
    }
}
