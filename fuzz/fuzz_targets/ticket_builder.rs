//! The ticket body builder over the example site, any transition and condition.
#![no_main]

use std::sync::OnceLock;

static SITE: OnceLock<Option<tend_fuzz::ExampleSite>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|input: tend_fuzz::BuilderInput| {
    if let Some(site) = SITE.get_or_init(tend_fuzz::ExampleSite::load) {
        tend_fuzz::ticket_builder(site, input);
    }
});
