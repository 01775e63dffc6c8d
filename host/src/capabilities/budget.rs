//! The per-call budget of capability host calls: how many a plugin call may make, and how
//! many bytes they may move in and out (keys, values, documents, requests).
//!
//! The epoch deadline bounds guest code and every host call ends at the call's deadline,
//! but a loop of cheap host calls could still move gigabytes through the store inside
//! one deadline. The budget bounds that per call, so a plugin that abuses a capability
//! hurts only its own call: once spent, every further capability call of that plugin
//! call is an `error` the plugin sees, and the next call starts with a full budget.

/// What one plugin call may spend (`[capabilities] max_host_calls`, `max_bytes_moved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Most capability host calls (`kv`, `docs`, `notify`, `prices`, `rag`) one plugin call may make.
    pub max_host_calls: u32,
    /// Most bytes those host calls may move in and out during one plugin call.
    pub max_bytes_moved: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_host_calls: 10_000,
            max_bytes_moved: 32 * 1024 * 1024,
        }
    }
}

/// What the running call may still do.
#[derive(Debug, Clone)]
pub struct CallBudget {
    limits: BudgetConfig,
    calls_left: u32,
    bytes_left: u64,
}

impl CallBudget {
    pub fn new(limits: BudgetConfig) -> CallBudget {
        CallBudget {
            limits,
            calls_left: limits.max_host_calls,
            bytes_left: limits.max_bytes_moved,
        }
    }

    /// A new call: a full budget.
    pub fn reset(&mut self) {
        self.calls_left = self.limits.max_host_calls;
        self.bytes_left = self.limits.max_bytes_moved;
    }

    /// Count one host call that sends `bytes` to the host.
    pub fn start(&mut self, during: &str, bytes: usize) -> Result<(), String> {
        if self.calls_left == 0 {
            return Err(format!(
                "`{during}` refused: this call already made its {} capability host calls \
                 (`[capabilities] max_host_calls`)",
                self.limits.max_host_calls
            ));
        }
        self.calls_left -= 1;
        self.take(during, bytes)
    }

    /// Count `bytes` moved (an answer on its way back to the plugin).
    pub fn take(&mut self, during: &str, bytes: usize) -> Result<(), String> {
        let bytes = bytes as u64;
        if bytes > self.bytes_left {
            self.bytes_left = 0;
            return Err(format!(
                "`{during}` refused: this call already moved its {} bytes through capability \
                 host calls (`[capabilities] max_bytes_moved`)",
                self.limits.max_bytes_moved
            ));
        }
        self.bytes_left -= bytes;
        Ok(())
    }
}

/// Bytes an answer moves back into the plugin, for the per-call budget.
pub trait Moved {
    fn moved(&self) -> usize;
}

impl Moved for () {
    fn moved(&self) -> usize {
        0
    }
}
impl Moved for bool {
    fn moved(&self) -> usize {
        1
    }
}
impl Moved for i64 {
    fn moved(&self) -> usize {
        8
    }
}
impl Moved for Vec<u8> {
    fn moved(&self) -> usize {
        self.len()
    }
}
impl Moved for String {
    fn moved(&self) -> usize {
        self.len()
    }
}
impl<T: Moved> Moved for Option<T> {
    fn moved(&self) -> usize {
        self.as_ref().map_or(0, Moved::moved)
    }
}
impl<T: Moved> Moved for Vec<T> {
    fn moved(&self) -> usize {
        self.iter().map(Moved::moved).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_bytes_are_counted_per_call() {
        let mut b = CallBudget::new(BudgetConfig {
            max_host_calls: 2,
            max_bytes_moved: 10,
        });
        b.start("kv.get", 4).unwrap();
        b.start("kv.get", 4).unwrap();
        let err = b.start("kv.get", 0).unwrap_err();
        assert!(err.contains("max_host_calls"), "{err}");
        b.reset();
        b.start("kv.set", 6).unwrap();
        let err = b.take("kv.get", 5).unwrap_err();
        assert!(err.contains("max_bytes_moved"), "{err}");
        b.reset();
        b.start("kv.set", 10).unwrap();
    }
}
