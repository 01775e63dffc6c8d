//! `impressox:plugin/config`: a plugin's own settings (`[plugins.settings.<name>]`) and the
//! secrets its grant maps to environment variables. Secret values are never logged.

use crate::bindings::config::Host;
use crate::runtime::state::StoreState;

impl Host for StoreState {
    fn get(&mut self, key: String) -> Option<String> {
        self.plugin.settings.get(&key).map(|value| match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn secret(&mut self, name: String) -> Option<String> {
        let var = self.plugin.grants.secrets.get(&name)?;
        std::env::var(var).ok()
    }
}
