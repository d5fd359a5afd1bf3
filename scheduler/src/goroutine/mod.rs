//! One goroutine: its memory ([`task`]), its stack ([`stack`]) and the handle that joins it
//! ([`join`]).

pub(crate) mod join;
pub(crate) mod stack;
pub(crate) mod task;
