//! Groups of goroutines that work on one task: Go's `golang.org/x/sync/errgroup`.
//!
//! A [`Group`] starts goroutines that return `Result<(), E>`, waits for all of them, and
//! returns the first error; with [`Group::with_context`] the first error also cancels a
//! [`Context`](crate::context::Context) that the goroutines watch, so one failure stops the
//! rest, and [`Group::set_limit`] bounds how many run at once. A [`ResultGroup`] collects the
//! goroutines' values too, in the order they were started. For results in the order the
//! goroutines finish, without the error handling, see [`JoinSet`](crate::JoinSet).
//!
//! The module is `group` rather than Go's `errgroup`: what it holds is a group of
//! goroutines, errors being one thing it handles, and `scheduler::group::Group` reads
//! without the stutter of `errgroup::Group`.
//!
//! # Examples
//!
//! Fetch parts of a task, at most 3 at a time, and stop at the first failure:
//!
//! ```
//! use scheduler::context::Context;
//! use scheduler::group::{Group, ResultGroup};
//!
//! let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
//! let pages = rt.block_on(|| {
//!     let (group, ctx) = Group::with_context(&Context::background());
//!     let group = ResultGroup::from(group);
//!     group.set_limit(Some(3));
//!     for id in 0..8_u32 {
//!         let ctx = ctx.clone();
//!         group.go(move || match ctx.err() {
//!             Some(err) => Err(format!("page {id}: {err}")),
//!             None => Ok(format!("page {id}")),
//!         });
//!     }
//!     group.wait()
//! });
//! assert_eq!(pages.unwrap().len(), 8);
//! ```

// `core` holds what every flavour of group shares (the outcome, the limit, the count, the
// context) behind `Core::admit`, `Core::start` and `Core::finish`, with the spawning passed
// in: a group whose goroutines borrow from a scope reuses it with the scope's spawn.
mod core;
mod errgroup;
mod results;
mod scoped;

pub use errgroup::Group;
pub use results::ResultGroup;
pub use scoped::ScopedGroup;
