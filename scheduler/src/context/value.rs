//! Values carried by contexts, Go's `context.WithValue`: typed keys, looked up through the
//! chain of ancestors, nearest first.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// A typed key for a value carried by a [`Context`](super::Context), declared as a `static`:
/// its address is its identity, so two keys never clash, whatever their names or types,
/// and the value found under a `Key<T>` is always a `T`.
///
/// Declare keys with `static`, not `const`: a `const` is copied at each use, so each use would
/// be a key of its own.
///
/// # Examples
///
/// ```
/// use scheduler::context::{Context, Key};
///
/// static REQUEST_ID: Key<u64> = Key::new("request id");
///
/// let ctx = Context::background().with_value(&REQUEST_ID, 42);
/// assert_eq!(ctx.value(&REQUEST_ID), Some(&42));
/// assert_eq!(REQUEST_ID.name(), "request id");
/// ```
pub struct Key<T> {
    name: &'static str,
    /// `fn() -> T`: the key holds no `T`, so it is `Send + Sync` whatever `T` is.
    _type: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key named `name`; the name is for humans (debug output) only.
    ///
    /// # Examples
    ///
    /// ```
    /// static USER: scheduler::context::Key<String> = scheduler::context::Key::new("user");
    /// assert_eq!(USER.name(), "user");
    /// ```
    pub const fn new(name: &'static str) -> Key<T> {
        Key {
            name,
            _type: PhantomData,
        }
    }

    /// The name given to [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// static LIMIT: scheduler::context::Key<u32> = scheduler::context::Key::new("limit");
    /// assert_eq!(LIMIT.name(), "limit");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The key's identity: its address.
    pub(super) fn id(&'static self) -> usize {
        self as *const Key<T> as usize
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.name).finish()
    }
}

/// One value set on a context, and the values of its ancestors behind it. Immutable once
/// made, so shared by every descendant without a lock.
pub(super) struct Values {
    key: usize,
    name: &'static str,
    value: Box<dyn Any + Send + Sync>,
    parent: Option<Arc<Values>>,
}

impl Values {
    /// `parent`'s values with `value` set under `key` in front.
    pub(super) fn with<T: Send + Sync + 'static>(
        parent: Option<Arc<Values>>,
        key: &'static Key<T>,
        value: T,
    ) -> Arc<Values> {
        Arc::new(Values {
            key: key.id(),
            name: key.name,
            value: Box::new(value),
            parent,
        })
    }

    /// The nearest value set under `key`.
    pub(super) fn find<T: 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        let id = key.id();
        let mut values = Some(self);
        while let Some(v) = values {
            if v.key == id {
                // Set under this key, so a `T`: the check cannot fail, and is made anyway.
                return v.value.downcast_ref();
            }
            values = v.parent.as_deref();
        }
        None
    }

    /// The names of the keys set, nearest first (shadowed ones included).
    pub(super) fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut values = Some(self);
        while let Some(v) = values {
            names.push(v.name);
            values = v.parent.as_deref();
        }
        names
    }
}

impl Drop for Values {
    /// Frees a long chain in a loop, not by recursion, which could overflow a goroutine's
    /// stack.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(values) = next {
            match Arc::try_unwrap(values) {
                Ok(mut values) => next = values.parent.take(),
                Err(_) => break, // shared: its other owners keep it
            }
        }
    }
}
