//! [`CapError`]: why a capability operation gave no answer. The capabilities' logic
//! returns it and `call` turns it into a WIT `error` (or logs it); it lives below both so
//! that the logic never depends on the call path or the store state.

/// Why a capability operation produced no answer.
#[derive(Debug)]
pub enum CapError {
    /// The plugin's fault or an expected refusal; the message is shown to it as is.
    Refused(String),
    /// The backend failed; logged in full, shown to the plugin as a stable message.
    Backend(anyhow::Error),
}

impl CapError {
    pub fn refused(message: impl Into<String>) -> CapError {
        CapError::Refused(message.into())
    }
}
