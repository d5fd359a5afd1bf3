//! The `select!` macro: parses crossbeam-channel's arm syntax into one call of
//! [`select`](super::select) and a dispatch on the arm it completed.

/// Waits on several channel operations and runs the arm of the one that completes, Go's
/// `select`.
///
/// Arms, in crossbeam-channel's syntax:
///
/// * `recv(rx) -> msg => body`: `msg` is `Result<T, RecvError>` (`Err` once `rx` is closed and
///   empty, which makes the arm ready).
/// * `send(tx, value) -> res => body`: `res` is `Result<(), SendError<T>>`.
/// * `default => body`: runs if no operation is ready now (at most one default arm).
/// * `default(timeout) => body`: runs if none becomes ready within `timeout`.
///
/// As in Go, every channel and value expression is evaluated once, in order, on entry; values
/// of send arms that are not chosen are dropped. When several operations are ready, one is
/// chosen uniformly at random, so no arm starves. Without a default arm, `select!` blocks (a
/// goroutine parks; a plain thread blocks) until one operation completes; exactly one does,
/// and the registrations of the others are withdrawn. Bodies may `break`, `continue` and
/// `return` as in a `match`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use scheduler::{chan, select};
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// rt.block_on(|| {
///     let (tx, rx) = chan::bounded::<&str>(1);
///     let (_quit_tx, quit) = chan::bounded::<()>(0);
///     scheduler::spawn(move || tx.send("ping").unwrap());
///     let got = select! {
///         recv(rx) -> msg => msg.unwrap(),
///         recv(quit) -> _ => "quit",
///         default(Duration::from_secs(5)) => "timeout",
///     };
///     assert_eq!(got, "ping");
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($arms:tt)*) => {
        $crate::__select_parse!(@arms [] @index [0] @default [] $($arms)*)
    };
}

/// Internal: turns `select!` arms into a list of `(op, index, kind, args, pattern, body)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // Done: emit.
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]) => {
        $crate::__select_emit!(@arms [$($arms)*] @default [$($default)*])
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*] , $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($arms)*] @index [$($index)*] @default [$($default)*] $($rest)*)
    };

    // recv(rx) -> pat => body
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        recv($rx:expr) -> $pat:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op rx [$($index)*] recv ($rx) ($pat) $body)]
            @index [$($index)* + 1] @default [$($default)*] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        recv($rx:expr) -> $pat:pat => $body:expr , $($rest:tt)*) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op rx [$($index)*] recv ($rx) ($pat) { $body })]
            @index [$($index)* + 1] @default [$($default)*] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        recv($rx:expr) -> $pat:pat => $body:expr) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op rx [$($index)*] recv ($rx) ($pat) { $body })]
            @index [$($index)* + 1] @default [$($default)*])
    };

    // send(tx, value) -> pat => body
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        send($tx:expr, $value:expr) -> $pat:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op tx [$($index)*] send ($tx, $value) ($pat) $body)]
            @index [$($index)* + 1] @default [$($default)*] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        send($tx:expr, $value:expr) -> $pat:pat => $body:expr , $($rest:tt)*) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op tx [$($index)*] send ($tx, $value) ($pat) { $body })]
            @index [$($index)* + 1] @default [$($default)*] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*]
        send($tx:expr, $value:expr) -> $pat:pat => $body:expr) => {
        $crate::__select_parse!(
            @arms [$($arms)* (op tx [$($index)*] send ($tx, $value) ($pat) { $body })]
            @index [$($index)* + 1] @default [$($default)*])
    };

    // default => body, default(timeout) => body
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default []
        default => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($arms)*] @index [$($index)*]
            @default [($crate::__private::Mode::NonBlock) $body] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default []
        default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($arms)*] @index [$($index)*]
            @default [($crate::__private::Mode::NonBlock) { $body }] $($($rest)*)?)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default []
        default($timeout:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(@arms [$($arms)*] @index [$($index)*]
            @default [($crate::__private::Mode::after($timeout)) $body] $($rest)*)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default []
        default($timeout:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@arms [$($arms)*] @index [$($index)*]
            @default [($crate::__private::Mode::after($timeout)) { $body }] $($($rest)*)?)
    };
    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)+]
        default $($rest:tt)*) => {
        ::core::compile_error!("select! takes at most one default arm")
    };

    (@arms [$($arms:tt)*] @index [$($index:tt)*] @default [$($default:tt)*] $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "select!: expected `recv(rx) -> pat => body`, `send(tx, value) -> pat => body`, ",
            "`default => body` or `default(timeout) => body`, found: ",
            ::core::stringify!($($rest)+)
        ))
    };
}

/// Internal: evaluates the operands, runs the select, dispatches to the chosen body.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_emit {
    (@arms [$(($op:ident $end:ident [$($index:tt)*] $kind:ident ($($args:tt)*) ($pat:pat) $body:tt))*]
     @default [$(($mode:expr) $default:tt)?]) => {{
        $( $crate::__select_bind!($op $end $kind ($($args)*)); )*
        let __chosen = {
            let __ops: &mut [&mut dyn $crate::__private::Selectable] = &mut [$( &mut $op ),*];
            $crate::__private::select(__ops, $crate::__select_mode!($($mode)?))
        };
        $(
            if __chosen == ::core::option::Option::Some($($index)*) {
                let $pat = $op.outcome();
                $body
            } else
        )*
        {
            $crate::__select_default!(__chosen $($default)?)
        }
    }};
}

/// Internal: binds one arm's operation, evaluating its operands once.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_bind {
    ($op:ident $end:ident recv ($rx:expr)) => {
        let $end = &$rx;
        #[allow(unused_mut)]
        let mut $op = $crate::__private::RecvOp::new($end);
    };
    ($op:ident $end:ident send ($tx:expr, $value:expr)) => {
        let $end = &$tx;
        #[allow(unused_mut)]
        let mut $op = $crate::__private::SendOp::new($end, $value);
    };
}

/// Internal: how long the select may wait.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_mode {
    () => {
        $crate::__private::Mode::Block
    };
    ($mode:expr) => {
        $mode
    };
}

/// Internal: what runs when no arm completed.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_default {
    ($chosen:ident $default:tt) => {
        $default
    };
    ($chosen:ident) => {
        ::core::unreachable!("select! without a default arm returned without an operation")
    };
}
