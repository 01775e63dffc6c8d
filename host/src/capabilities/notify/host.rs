//! The WIT adapter of `notify`.

use crate::bindings::notify::Host;
use crate::bindings::types::Notification;
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;

impl Host for StoreState {
    fn enqueue(
        &mut self,
        request: Notification,
        channels: Vec<String>,
    ) -> wasmtime::Result<Result<(), String>> {
        let bytes = request.id.len()
            + request.user_id.len()
            + request.kind.len()
            + request.title.len()
            + request.body.len()
            + request.data_json.len()
            + channels.iter().map(String::len).sum::<usize>();
        run(
            self,
            "notify.enqueue",
            |c| c.notify.as_ref(),
            bytes,
            |n| n.enqueue(&request, &channels),
        )
    }
}
