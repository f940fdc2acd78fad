//! `flipbook import` and `append-states` input: each line parsed as an exported event and as an
//! append part, the way the CLI parses them, and what parses validated as the store would.
//! Whatever the text, an answer naming the line and no panic.
#![no_main]

use flipbook_model::jsonl::{EventLine, PartLine};
use flipbook_model::validate::{self, Limits};
use flipbook_model::{AppendRequest, Expectation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    for (index, line) in text.lines().enumerate() {
        if let Ok((state_id, event)) = EventLine::parse(line, index + 1) {
            let expected = match event.version {
                Some(first) => Expectation::Exactly(first.saturating_sub(1)),
                None => Expectation::Any,
            };
            let _ = validate::append(&AppendRequest::new(state_id, expected, vec![event]), &limits);
        }
        if let Ok(part) = PartLine::parse(line, index + 1) {
            let _ = validate::append_states(&[part], &limits);
        }
    }
});
