//! The embeddable widget script and its content hash: the asset routes serve it
//! (`/widget.js`, `/widget/widget.<hash>.js`), the demo page and the dashboard's flow preview
//! link to it by hash.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub const WIDGET_JS: &str = include_str!("../../../widget/widget.js");

/// First 16 hex characters of the script's SHA-256.
pub fn widget_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hex::encode(Sha256::digest(WIDGET_JS.as_bytes()))[..16].to_string())
}
