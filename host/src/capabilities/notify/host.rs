//! The WIT adapter of `notify`.

use crate::bindings::notify::Host;
use crate::bindings::types::Notification;
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

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
        let Some(mut fx) = self.effects.take() else {
            return run(
                self,
                "notify.enqueue",
                |c| c.notify.as_ref(),
                bytes,
                |n| n.enqueue(&request, &channels),
            );
        };
        // An event handler's call: checked now, enqueued with the event's ack.
        let mut prepared = None;
        let answer = run(
            self,
            "notify.enqueue",
            |c| c.notify.as_ref(),
            bytes,
            |n| {
                let prepared = &mut prepared;
                async move {
                    *prepared = Some((n.prepare(&request, &channels).await?, n.source()));
                    Ok(())
                }
            },
        );
        if let (Ok(Ok(())), Some((req, source))) = (&answer, prepared) {
            fx.notify(req, source);
        }
        self.effects = Some(fx);
        answer
    }
}

/// Add `impressox:plugin/notify` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::notify::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
