//! Values made once, on first use, and shared between the threads of a job.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;

/// A value made by the first caller that needs it and shared with the later
/// ones, who wait while it is made; [`Self::clear`] drops it.
pub(crate) struct Shared<T>(Mutex<Option<Arc<T>>>);

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T> Shared<T> {
    /// The value, made by `make` if nobody has made it yet (an error is
    /// returned and nothing kept).
    pub(crate) fn get_or_make(&self, make: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        let mut slot = lock(&self.0);
        if let Some(value) = slot.as_ref() {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(make()?);
        *slot = Some(Arc::clone(&value));
        Ok(value)
    }

    /// Drop the value (the next caller makes it again).
    pub(crate) fn clear(&self) {
        lock(&self.0).take();
    }
}

/// The guarded value, also after a panic on another thread (every writer
/// here replaces the value whole, so it stays valid).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
