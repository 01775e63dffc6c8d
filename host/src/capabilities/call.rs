//! One capability host call, the same way for every capability: the grant, the per-call
//! budget, the store operation bounded by the call's deadline, and the one place where a
//! failure becomes either a WIT `error` or a trap.
//!
//! - Not granted, over a cap, over the budget, invalid input: a WIT `error` with a message
//!   that says what was wrong — an expected failure the plugin can handle.
//! - The store failed (Redis down, a MongoDB error): a WIT `error` with a stable message;
//!   what the driver said goes to the host's log only (it may hold addresses or names).
//! - The call's deadline passed while waiting on the store: a trap carrying
//!   [`DeadlineExceeded`], which the call path reports as the call's timeout. The store
//!   operation is dropped at that moment; the host keeps serving.

use std::future::Future;

use super::budget::Moved;
use super::error::CapError;
use super::services::Granted;
use crate::runtime::deadline::wait;
use crate::runtime::state::StoreState;

/// Run one capability call of `state`'s plugin: `pick` finds the plugin's granted state
/// for the capability (none: not granted), `bytes_in` is what the plugin sends, and `op`
/// the operation on the granted state.
pub fn run<'a, G, T, F>(
    state: &'a mut StoreState,
    during: &'static str,
    pick: impl FnOnce(&'a Granted) -> Option<&'a G>,
    bytes_in: usize,
    op: impl FnOnce(&'a G) -> F,
) -> wasmtime::Result<Result<T, String>>
where
    G: 'a,
    F: Future<Output = Result<T, CapError>> + Send,
    T: Moved + Send,
{
    let deadline = state.deadline();
    let plugin: &'a crate::runtime::state::PluginContext = &state.plugin;
    let Some(granted) = pick(&plugin.caps) else {
        let capability = during.split('.').next().unwrap_or(during);
        return Ok(Err(format!(
            "the `{capability}` capability is not granted to plugin `{}`",
            plugin.name
        )));
    };
    if let Err(message) = state.budget.start(during, bytes_in) {
        return Ok(Err(message));
    }
    let outcome = wait(deadline, during, op(granted)).map_err(wasmtime::Error::new)?;
    Ok(match outcome {
        Ok(value) => match state.budget.take(during, value.moved()) {
            Ok(()) => Ok(value),
            Err(message) => Err(message),
        },
        Err(CapError::Refused(message)) => Err(message),
        Err(CapError::Backend(err)) => {
            let capability = during.split('.').next().unwrap_or(during);
            tracing::warn!(plugin = %plugin.name, during, error = format!("{err:#}"),
                "capability backend failed");
            Err(format!(
                "`{during}` failed: the {capability} store is unavailable right now; try again later"
            ))
        }
    })
}
