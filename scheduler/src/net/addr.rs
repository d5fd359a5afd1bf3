//! Addresses to connect or bind to, resolved without stalling a worker: literal addresses
//! at once, host names by the C library's resolver on the blocking-thread pool.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::sched::{blocking, current};
use crate::wait::Site;

/// Something that resolves to socket addresses: the same types as
/// [`std::net::ToSocketAddrs`] (`"host:port"`, `(host, port)`, an `IpAddr` with a port, a
/// `SocketAddr`, a slice of them). A host name is looked up on the blocking-thread pool when
/// called from a goroutine (the C library's resolver blocks), so no worker stalls on it.
pub trait ToSocketAddrs {
    /// What to resolve. Not for calling: the crate's functions resolve it.
    #[doc(hidden)]
    fn to_addrs(&self) -> Addrs;
}

/// An address list, or a name to look up. Opaque outside this crate.
#[doc(hidden)]
pub enum Addrs {
    /// Resolved already.
    Resolved(Vec<SocketAddr>),
    /// `host:port` to look up.
    Lookup(String),
    /// A host and a port to look up.
    HostPort(String, u16),
}

impl Addrs {
    /// Resolves to a list of addresses (an error if it is empty).
    pub(crate) fn resolve(self, site: Site) -> io::Result<Vec<SocketAddr>> {
        let addrs = match self {
            Addrs::Resolved(addrs) => addrs,
            Addrs::Lookup(host) => lookup(move || std_lookup(host.as_str()), site)?,
            Addrs::HostPort(host, port) => lookup(move || std_lookup((host.as_str(), port)), site)?,
        };
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any addresses",
            ));
        }
        Ok(addrs)
    }
}

fn std_lookup(addr: impl std::net::ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    Ok(addr.to_socket_addrs()?.collect())
}

/// Runs `f` on the blocking pool from a goroutine (parking it meanwhile), directly elsewhere.
/// Runs the lookup `f` on the blocking pool, a goroutine waiting for it at `site`.
fn lookup(
    f: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
    site: Site,
) -> io::Result<Vec<SocketAddr>> {
    if !current::can_suspend() {
        return f();
    }
    let job = current::with_shared("name resolution", |shared| blocking::spawn(shared, f))
        .map_err(io::Error::other)?;
    match job.join_at(site) {
        Ok(result) => result,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// A literal `ip:port` or `[ipv6]:port` is resolved at once, anything else looked up.
fn parse_or_lookup(s: &str) -> Addrs {
    match s.parse::<SocketAddr>() {
        Ok(addr) => Addrs::Resolved(vec![addr]),
        Err(_) => Addrs::Lookup(s.to_owned()),
    }
}

impl ToSocketAddrs for str {
    fn to_addrs(&self) -> Addrs {
        parse_or_lookup(self)
    }
}

impl ToSocketAddrs for String {
    fn to_addrs(&self) -> Addrs {
        parse_or_lookup(self)
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_addrs(&self) -> Addrs {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Addrs::Resolved(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Addrs::HostPort(self.0.to_owned(), self.1),
        }
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_addrs(&self) -> Addrs {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl ToSocketAddrs for SocketAddr {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![SocketAddr::new(IpAddr::V4(self.0), self.1)])
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(vec![SocketAddr::new(IpAddr::V6(self.0), self.1)])
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_addrs(&self) -> Addrs {
        Addrs::Resolved(self.to_vec())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_addrs(&self) -> Addrs {
        (**self).to_addrs()
    }
}

/// Tries `f` on each address in turn; returns the first success or the last error. A name to
/// look up first is looked up on the blocking pool, a goroutine waiting for it at `site`.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    site: Site,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_addrs().resolve(site)? {
        match f(&addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}
