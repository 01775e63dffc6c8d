//! The WIT adapter of `kv`: the grant, the budget and the deadline (`capabilities::call`),
//! then [`Granted`](super::Granted).

use crate::bindings::kv::Host;
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

// While the call collects its effects (`capabilities::effects`: an event handler), a
// write is checked and recorded instead of applied, and a read sees the call's own writes
// first, then what the call's batch read of it (`effects::BatchReads`), then the store.
// The effects are taken out of the state for the store read, so the read can borrow the
// state.

impl Host for StoreState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        let effects = self.effects.take();
        let reads = effects.as_ref().and_then(|fx| fx.batch_reads());
        let stored = run(
            self,
            "kv.get",
            |c| c.kv.as_ref(),
            key.len(),
            |kv| kv.get_in_batch(&key, reads.as_deref()),
        );
        self.effects = effects;
        let own = self.effects.as_ref().and_then(|fx| fx.overlay(&key));
        Ok(match (stored?, own) {
            (Ok(_), Some(own)) => Ok(own.map(<[u8]>::to_vec)),
            (stored, _) => stored,
        })
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        let bytes = key.len() + value.len();
        let Some(mut fx) = self.effects.take() else {
            return run(
                self,
                "kv.set",
                |c| c.kv.as_ref(),
                bytes,
                |kv| kv.set(&key, &value, ttl_ms),
            );
        };
        let checked = run(
            self,
            "kv.set",
            |c| c.kv.as_ref(),
            bytes,
            |kv| std::future::ready(kv.check_set(&key, &value, ttl_ms)),
        );
        if let (Ok(Ok(())), Some(ns)) = (&checked, namespace(self)) {
            fx.set(&ns, &key, &value, ttl_ms);
        }
        self.effects = Some(fx);
        checked
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        let Some(mut fx) = self.effects.take() else {
            return run(
                self,
                "kv.delete",
                |c| c.kv.as_ref(),
                key.len(),
                |kv| kv.delete(&key),
            );
        };
        // Whether a live value goes: the call's own last write, else the store's value.
        let reads = fx.batch_reads();
        let stored = run(
            self,
            "kv.delete",
            |c| c.kv.as_ref(),
            key.len(),
            |kv| async { Ok(kv.get_in_batch(&key, reads.as_deref()).await?.is_some()) },
        );
        let answer = match (stored, namespace(self)) {
            (Ok(Ok(stored_live)), Some(ns)) => {
                let live = fx.overlay(&key).map_or(stored_live, |own| own.is_some());
                fx.delete(&ns, &key);
                Ok(Ok(live))
            }
            (Ok(Err(e)), _) => Ok(Err(e)),
            (Ok(Ok(_)), None) => Ok(Err("the `kv` capability is not granted".into())),
            (Err(e), _) => Err(e),
        };
        self.effects = Some(fx);
        answer
    }

    fn incr(&mut self, key: String, by: i64) -> wasmtime::Result<Result<i64, String>> {
        let Some(mut fx) = self.effects.take() else {
            return run(
                self,
                "kv.incr",
                |c| c.kv.as_ref(),
                key.len() + 8,
                |kv| kv.incr(&key, by),
            );
        };
        // The value as the call sees it (its own last write, else the store's), plus `by`;
        // committed later as an increment, so concurrent counts add up.
        let own = fx.overlay(&key).map(|v| v.map(<[u8]>::to_vec));
        let reads = fx.batch_reads();
        let counted = run(
            self,
            "kv.incr",
            |c| c.kv.as_ref(),
            key.len() + 8,
            |kv| async {
                let current = match own {
                    Some(own) => own,
                    None => kv.get_in_batch(&key, reads.as_deref()).await?,
                };
                kv.incr_of(&key, current.as_deref(), by)
            },
        );
        let answer = match (counted, namespace(self)) {
            (Ok(Ok(new)), Some(ns)) => {
                fx.incr(&ns, &key, by, new);
                Ok(Ok(new))
            }
            (Ok(Err(e)), _) => Ok(Err(e)),
            (Ok(Ok(_)), None) => Ok(Err("the `kv` capability is not granted".into())),
            (Err(e), _) => Err(e),
        };
        self.effects = Some(fx);
        answer
    }
}

/// The plugin's kv namespace, when it has the grant.
fn namespace(state: &StoreState) -> Option<String> {
    state
        .plugin
        .caps
        .kv
        .as_ref()
        .map(|kv| kv.namespace().to_string())
}

/// Add `impressox:plugin/kv` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::kv::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
