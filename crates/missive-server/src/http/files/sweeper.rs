//! Expiry: files past `files.retention_secs` are deleted (blobs first, then records) every
//! `files.sweep_interval_secs`, off the request path.

use std::time::Duration;

use missive_core::id::now_ms;
use missive_core::model::FileRecord;

use crate::blobs::{BlobKey, BlobStore};
use crate::state::AppState;

/// Files deleted per store query.
const SWEEP_BATCH: u32 = 200;

/// Deletes expired files every `files.sweep_interval_secs`, off the request path.
pub async fn sweep_forever(state: AppState) {
    let every = Duration::from_secs(state.config.files.sweep_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let n = sweep_expired(&state).await;
        if n > 0 {
            tracing::info!(removed = n, "swept expired chat files");
        }
    }
}

/// Deletes the blobs, then the records, of files past their expiry. A file whose blobs
/// cannot be deleted keeps its record and is retried next sweep.
pub async fn sweep_expired(state: &AppState) -> u64 {
    let mut removed = 0;
    loop {
        let batch = match state.store.expired_files(now_ms() as i64, SWEEP_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%e, "listing expired files failed");
                return removed;
            }
        };
        let full = batch.len() == SWEEP_BATCH as usize;
        let mut progress = false;
        for file in &batch {
            if !delete_blobs(state.blobs.as_ref(), file).await {
                continue;
            }
            match state.store.delete_file(file.app_id, file.uuid).await {
                Ok(_) => {
                    removed += 1;
                    progress = true;
                }
                Err(e) => tracing::warn!(%e, "deleting an expired file's record failed"),
            }
        }
        if !full || !progress {
            return removed;
        }
    }
}

/// Deletes a file's original and thumbnail; true if both are gone.
async fn delete_blobs(blobs: &dyn BlobStore, file: &FileRecord) -> bool {
    let mut ok = true;
    for key in std::iter::once(&file.blob_key).chain(file.thumbnail_key.as_ref()) {
        let result = match BlobKey::parse(key) {
            Ok(k) => blobs.delete(&k).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, key, "could not delete a file blob");
            ok = false;
        }
    }
    ok
}
