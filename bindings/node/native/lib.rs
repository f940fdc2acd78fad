//! The native half of the Node.js binding: the core's client as one class, the TypeScript
//! package (`src/`) is the API users see. Reads cross once per page, packed into one buffer
//! that TypeScript decodes (`src/events.ts`): no JavaScript object is made here per event.

// Under `cfg(test)` (clippy --all-targets) napi-derive registers nothing with Node, so the
// exported items look unused there.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod errors;
mod pages;
mod values;
