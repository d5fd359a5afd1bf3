//! One goroutine: its memory ([`task`]), its stack ([`stack`]), what happens when it overflows
//! that stack ([`overflow`]), the handle that joins it ([`join`]) and its goroutine-local
//! values ([`locals`]).

pub(crate) mod completion;
pub(crate) mod home;
pub(crate) mod join;
pub(crate) mod locals;
pub(crate) mod overflow;
pub(crate) mod stack;
pub(crate) mod stack_memory;
pub(crate) mod state;
pub(crate) mod task;
