//! The reader under the tar parser: hashes every byte for the diff ID, counts them against the
//! layer's byte limit, and caps how much the parser may read while it looks for one entry's
//! headers.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// Which bound a read crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trip {
    /// The stream is longer than the byte limit.
    Stream,
    /// One entry's headers (GNU long names, PAX records, sparse maps) are larger than
    /// [`HEADER_BUDGET`]: the `tar` crate buffers them whole, so this bounds its memory.
    Header,
}

/// What the parser may read while producing one entry (Go's archive/tar allows 1 MiB per PAX
/// header; an entry may carry a long name, a long link name and a PAX header).
pub(crate) const HEADER_BUDGET: u64 = 4 << 20;

/// State shared between the apply loop and the meter the parser owns.
pub(crate) struct Ctl {
    max: u64,
    budget: Cell<Option<u64>>,
    tripped: Cell<Option<Trip>>,
}

impl Ctl {
    /// Caps the reads until [`Ctl::end_headers`] at [`HEADER_BUDGET`].
    pub(crate) fn begin_headers(&self) {
        self.budget.set(Some(HEADER_BUDGET));
    }

    pub(crate) fn end_headers(&self) {
        self.budget.set(None);
    }

    pub(crate) fn tripped(&self) -> Option<Trip> {
        self.tripped.get()
    }
}

pub(crate) struct Meter<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    ctl: Rc<Ctl>,
}

impl<R: Read> Meter<R> {
    pub(crate) fn new(inner: R, max: u64) -> Self {
        let ctl = Rc::new(Ctl {
            max,
            budget: Cell::new(None),
            tripped: Cell::new(None),
        });
        Meter {
            inner,
            hasher: Sha256::new(),
            read: 0,
            ctl,
        }
    }

    pub(crate) fn ctl(&self) -> Rc<Ctl> {
        self.ctl.clone()
    }

    /// Reads the rest of the stream (end-of-archive blocks and padding belong to the diff ID),
    /// then returns `sha256:<hex>` and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = hex::encode(self.hasher.finalize());
        Ok((format!("sha256:{digest}"), self.read))
    }

    fn trip(&self, t: Trip) -> io::Error {
        self.ctl.tripped.set(Some(t));
        io::Error::other(match t {
            Trip::Stream => "layer is larger than the byte limit",
            Trip::Header => "tar entry headers are too large",
        })
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(t) = self.ctl.tripped.get() {
            return Err(self.trip(t));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.ctl.max {
            return Err(self.trip(Trip::Stream));
        }
        if let Some(left) = self.ctl.budget.get() {
            let Some(left) = left.checked_sub(n as u64) else {
                return Err(self.trip(Trip::Header));
            };
            self.ctl.budget.set(Some(left));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
