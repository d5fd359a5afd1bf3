//! Shared helpers for the scheduler integration tests.
