//! A goroutine's goroutine-local values (`crate::GoroutineLocalKey`): a small map from a key's
//! identity to a boxed value, hung off the goroutine's header and allocated at its first use,
//! so that a goroutine that never uses one pays for a null pointer only.
//!
//! Every method here is called on one thread only: the thread of the goroutine whose code
//! runs (a started goroutine never changes thread, and a goroutine that a `join` runs inline
//! uses its joiner's slot on the joiner's thread; see [`Locals::run_inline`]). None of them
//! holds a borrow of the map while user code runs (an initialiser, a destructor), so user code
//! may reach the map again from inside.

use std::any::Any;
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

use super::completion::drop_contained;

/// One goroutine-local value: the key it belongs to and the value, boxed and leaked
/// (`Box::into_raw`) so that references into it survive the map's growth. Freed only by
/// [`Locals::destroy`].
struct Entry {
    key: usize,
    value: NonNull<dyn Any>,
}

/// The values of one goroutine, in the order they were made.
type Map = Vec<Entry>;

/// The slot's value once [`Locals::destroy`] ran: never a real allocation (it is odd), so it
/// tells "destroyed" apart from "none yet" (null) and from a map.
const DESTROYED: *mut Map = ptr::without_provenance_mut(1);

/// Why a goroutine-local value cannot be reached: the goroutine finished, and its values are
/// being (or have been) dropped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Destroyed;

/// A goroutine's slot for its goroutine-local values: null until the first value, then a map,
/// then [`DESTROYED`] once the goroutine finished.
///
/// Touched only on the goroutine's own thread (module doc), which is why it is a plain
/// `UnsafeCell` in a header that is `Sync`.
pub(crate) struct Locals(UnsafeCell<*mut Map>);

impl Locals {
    /// No values yet, and nothing allocated.
    pub(crate) const fn new() -> Locals {
        Locals(UnsafeCell::new(ptr::null_mut()))
    }

    /// The value stored for `key`: `Ok(None)` if there is none yet.
    ///
    /// # Safety
    /// On the thread of the goroutine that owns the slot (module doc). The pointer is valid
    /// until [`destroy`](Self::destroy) runs on this slot.
    #[inline]
    pub(crate) unsafe fn get(&self, key: usize) -> Result<Option<NonNull<dyn Any>>, Destroyed> {
        // SAFETY: this thread alone touches the slot (caller's contract), and no reference
        // into it is held across user code, so nobody else reads or writes it now.
        let map = unsafe { *self.0.get() };
        if map == DESTROYED {
            return Err(Destroyed);
        }
        // SAFETY: non-null and not DESTROYED, so a live map made by `insert`, which only
        // `destroy` frees; the shared borrow ends before this returns.
        let Some(map) = (unsafe { map.as_ref() }) else {
            return Ok(None);
        };
        Ok(map.iter().find(|e| e.key == key).map(|e| e.value))
    }

    /// Stores `value` for `key` and returns where it lives. Gives `value` back if the slot
    /// was destroyed, or if `key` has a value already (an initialiser that reached its own
    /// key: the value made first stays, so references into it stay valid).
    ///
    /// # Safety
    /// As for [`get`](Self::get).
    pub(crate) unsafe fn insert(
        &self,
        key: usize,
        value: Box<dyn Any>,
    ) -> Result<NonNull<dyn Any>, Box<dyn Any>> {
        // SAFETY: as in `get`; the exclusive borrow of the slot ends with this statement.
        let slot = unsafe { &mut *self.0.get() };
        if *slot == DESTROYED {
            return Err(value);
        }
        if slot.is_null() {
            *slot = Box::into_raw(Box::<Map>::default());
        }
        // SAFETY: a live map made above or by an earlier `insert`, freed only by `destroy`;
        // nothing else borrows it now (as in `get`), and this borrow ends before we return.
        let map = unsafe { &mut **slot };
        if map.iter().any(|e| e.key == key) {
            return Err(value);
        }
        let value = NonNull::from(Box::leak(value));
        map.push(Entry { key, value });
        Ok(value)
    }

    /// Whether the goroutine has values to drop.
    ///
    /// # Safety
    /// As for [`get`](Self::get).
    #[inline]
    unsafe fn in_use(&self) -> bool {
        // SAFETY: as in `get`.
        is_map(unsafe { *self.0.get() })
    }

    /// Drops the goroutine's values, if it has any, newest first, and leaves the slot
    /// destroyed: from then on [`get`](Self::get) fails, so a destructor that reaches any key
    /// gets an error rather than a new value. A destructor that panics is contained (the panic
    /// hook has printed it) and the others still run. A slot without values is left as it is:
    /// no code of a finished goroutine can reach it.
    ///
    /// # Safety
    /// As for [`get`](Self::get), once the goroutine's own code is done (no reference into a
    /// value is held any more).
    #[inline]
    pub(crate) unsafe fn destroy(&self) {
        // SAFETY: as in `get` (caller's contract).
        unsafe {
            if self.in_use() {
                self.destroy_values();
            }
        }
    }

    /// [`destroy`](Self::destroy) of a slot that holds a map.
    ///
    /// # Safety
    /// As for `destroy`.
    #[cold]
    unsafe fn destroy_values(&self) {
        // SAFETY: as in `get`.
        let map = unsafe { self.0.get().replace(DESTROYED) };
        // SAFETY: a live map (the caller saw one) made by `insert` with `Box::into_raw`; the
        // slot no longer points to it, so this is its only owner.
        let map = unsafe { Box::from_raw(map) };
        for entry in map.into_iter().rev() {
            // SAFETY: made by `Box::leak` in `insert` and freed only here, once; the
            // goroutine's code is done with it (caller's contract).
            drop_contained(unsafe { Box::from_raw(entry.value.as_ptr()) });
        }
    }

    /// Runs `f`, a goroutine that a `join` runs on its joiner's stack, with this slot (the
    /// joiner's) holding that goroutine's values instead of the joiner's, so that each sees its
    /// own; the goroutine destroys them as it finishes. The joiner's values are put back
    /// afterwards, untouched (references the joiner holds into them stay valid).
    ///
    /// # Safety
    /// On the joiner's thread, by the joiner itself (its slot), as for [`get`](Self::get).
    pub(crate) unsafe fn run_inline<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Puts the joiner's values back, even if `f` unwinds.
        struct Restore<'a> {
            locals: &'a Locals,
            saved: *mut Map,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                // The inline goroutine destroyed its own values as it finished; if it did not
                // get that far, drop them now, then put the joiner's back.
                // SAFETY: on the joiner's thread, as `run_inline` (its caller's contract).
                unsafe {
                    self.locals.destroy();
                    *self.locals.0.get() = self.saved;
                }
            }
        }
        // SAFETY: as in `get`.
        let saved = unsafe { self.0.get().replace(ptr::null_mut()) };
        let _restore = Restore {
            locals: self,
            saved,
        };
        f()
    }
}

impl Drop for Locals {
    /// A goroutine destroys its values as it finishes, on its own thread, so nothing is left
    /// here. If something were (a goroutine torn down without finishing), the values are
    /// leaked: they may be `!Send`, and this may run on any thread.
    fn drop(&mut self) {
        debug_assert!(
            !is_map(*self.0.get_mut()),
            "scheduler: internal error: goroutine-local values left"
        );
    }
}

/// Whether the slot's value is a map (neither null nor [`DESTROYED`]).
#[inline]
fn is_map(map: *mut Map) -> bool {
    !map.is_null() && map != DESTROYED
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// Counts its drops.
    struct Probe(Rc<Cell<usize>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn read<T: 'static + Copy>(p: NonNull<dyn Any>) -> T {
        // SAFETY: the test's values live until `destroy`, which comes after.
        *unsafe { p.as_ref() }
            .downcast_ref::<T>()
            .expect("the stored type")
    }

    #[test]
    fn values_are_kept_per_key_and_the_first_stays() {
        let locals = Locals::new();
        // SAFETY: one thread, and no reference kept across calls.
        unsafe {
            assert_eq!(locals.get(1).map(|v| v.is_some()), Ok(false));
            assert!(!locals.in_use());
            let a = locals.insert(1, Box::new(10u32)).expect("stored");
            locals.insert(2, Box::new(20u32)).expect("stored");
            assert!(
                locals.insert(1, Box::new(11u32)).is_err(),
                "the first value stays"
            );
            assert_eq!(read::<u32>(a), 10);
            assert_eq!(read::<u32>(locals.get(2).unwrap().unwrap()), 20);
            assert!(locals.in_use());
            locals.destroy();
        }
    }

    #[test]
    fn destroy_drops_every_value_once_and_refuses_new_ones() {
        let drops = Rc::new(Cell::new(0));
        let locals = Locals::new();
        // SAFETY: one thread, and no reference kept across calls.
        unsafe {
            locals.insert(1, Box::new(Probe(drops.clone()))).unwrap();
            locals.insert(2, Box::new(Probe(drops.clone()))).unwrap();
            locals.destroy();
            assert_eq!(drops.get(), 2);
            assert!(matches!(locals.get(1), Err(Destroyed)));
            assert!(locals.insert(3, Box::new(Probe(drops.clone()))).is_err());
            assert!(!locals.in_use());
            locals.destroy();
        }
        // The refused value went back to the caller, which dropped it; nothing twice.
        assert_eq!(drops.get(), 3);
    }

    #[test]
    fn an_inline_run_has_its_own_values_and_restores_the_joiners() {
        let drops = Rc::new(Cell::new(0));
        let locals = Locals::new();
        // SAFETY: one thread, and no reference kept across calls.
        unsafe {
            let mine = locals.insert(1, Box::new(1u32)).unwrap();
            locals.run_inline(|| {
                assert_eq!(locals.get(1).map(|v| v.is_some()), Ok(false));
                locals.insert(1, Box::new(Probe(drops.clone()))).unwrap();
                // The inline goroutine finishes: its values go.
                locals.destroy();
                assert_eq!(drops.get(), 1);
            });
            let found = locals.get(1).unwrap().expect("the joiner's value");
            assert_eq!(found.cast::<()>(), mine.cast::<()>());
            assert_eq!(read::<u32>(mine), 1);
            locals.run_inline(|| {
                // One that never finished (an internal error): dropped on the way out.
                locals.insert(2, Box::new(Probe(drops.clone()))).unwrap();
            });
            assert_eq!(drops.get(), 2);
            locals.destroy();
        }
    }
}
