//! The native half of the Node.js binding: the core's client, its reads, subscriptions and
//! sessions as classes; the TypeScript package (`src/`) is the API users see. Events cross once
//! per page, packed into one buffer that TypeScript decodes (`src/events.ts`): no JavaScript
//! object is made here per event, and no JavaScript is called from a Rust thread.

// Under `cfg(test)` (clippy --all-targets) napi-derive registers nothing with Node, so the
// exported items look unused there.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod errors;
mod pages;
mod sessions;
mod slot;
mod subscriptions;
mod values;
