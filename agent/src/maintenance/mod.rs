//! The maintenance domain, pure (no I/O): calendar spans, business calendar and SLA
//! due times, warranty and coverage.

pub mod span;

pub use span::Span;
