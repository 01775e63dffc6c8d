//! `impressox webpush keygen`: a new VAPID key pair (RFC 8292) for the `webpush` channel,
//! printed as web-push libraries print theirs: base64url of the raw 32-byte P-256 private
//! key (for `IMPRESSOX_VAPID_PRIVATE_KEY`) and of the 65-byte public key (the page's
//! `applicationServerKey`). Nothing is written anywhere: the operator stores the private key
//! as a secret.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::notify::webpush::Vapid;

#[derive(Subcommand, Debug)]
pub enum WebpushCommand {
    /// Print a new VAPID key pair.
    Keygen {
        /// One JSON object (`private_key`, `public_key`) instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn dispatch(config: &Config, cmd: WebpushCommand) -> Result<ExitCode> {
    match cmd {
        WebpushCommand::Keygen { json } => {
            let (private, public) = Vapid::generate();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"private_key": private, "public_key": public})
                );
            } else {
                let var = &config.notify.webpush.private_key_env;
                println!(
                    "Public key (the page's applicationServerKey; also served at GET /api/v1/webpush/public-key):"
                );
                println!("{public}");
                println!();
                println!("Private key (set it as {var}; keep it secret):");
                println!("{private}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
