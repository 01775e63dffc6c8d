//! [`lock`]: the one way this crate locks a std mutex. A leaf every other file may use.

use std::sync::Mutex;

/// Locks a std mutex, recovering from poisoning (the data stays consistent: every critical
/// section here is a single assignment or a small read).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
