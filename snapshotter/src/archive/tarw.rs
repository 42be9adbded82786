//! Writing layer entries as POSIX (ustar + PAX) tar, the format containerd's diff writer
//! produces: values that do not fit a ustar field go into a PAX record instead of a GNU
//! extension, and no user or group names are looked up.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// Largest value of an 8-byte octal field (mode, uid, gid).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;
const NAME_LEN: usize = 100;

/// One entry's header fields.
pub(crate) struct Meta {
    /// Relative path, `/`-separated, directories ending in `/`.
    pub(crate) name: Vec<u8>,
    pub(crate) kind: EntryType,
    /// Permission bits with setuid/setgid/sticky.
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Content length, for regular files.
    pub(crate) size: u64,
    /// Whole seconds (containerd truncates).
    pub(crate) mtime: i64,
    /// Symlink target or hard link source name.
    pub(crate) link: Option<Vec<u8>>,
    /// Major and minor, for character and block devices.
    pub(crate) dev: (u32, u32),
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// An entry with only a name and a type, everything else zero (whiteouts).
    pub(crate) fn bare(name: Vec<u8>, kind: EntryType) -> Meta {
        Meta {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: None,
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Copies `value` into a fixed field, truncated; the full value travels in a PAX record.
fn set_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Writes `m` (preceded by a PAX header when needed) and `m.size` bytes of `data`.
pub(crate) fn append<W: Write>(
    b: &mut tar::Builder<W>,
    m: &Meta,
    data: impl Read,
) -> io::Result<()> {
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut h = Header::new_ustar();
    h.set_entry_type(m.kind);
    if m.name.len() > NAME_LEN {
        pax.push((b"path".to_vec(), m.name.clone()));
    }
    set_bytes(&mut h.as_old_mut().name, &m.name);
    if let Some(link) = &m.link {
        if link.len() > NAME_LEN {
            pax.push((b"linkpath".to_vec(), link.clone()));
        }
        set_bytes(&mut h.as_old_mut().linkname, link);
    }
    h.set_mode(m.mode & 0o7777);
    let mut number = |key: &[u8], v: u64, max: u64| -> u64 {
        if v > max {
            pax.push((key.to_vec(), v.to_string().into_bytes()));
            0
        } else {
            v
        }
    };
    let (uid, gid) = (
        number(b"uid", m.uid, MAX_OCTAL_8),
        number(b"gid", m.gid, MAX_OCTAL_8),
    );
    let size = number(b"size", m.size, MAX_OCTAL_12);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    match u64::try_from(m.mtime) {
        Ok(t) if t <= MAX_OCTAL_12 => h.set_mtime(t),
        _ => {
            pax.push((b"mtime".to_vec(), m.mtime.to_string().into_bytes()));
            h.set_mtime(0);
        }
    }
    if matches!(m.kind, EntryType::Char | EntryType::Block) {
        h.set_device_major(m.dev.0)?;
        h.set_device_minor(m.dev.1)?;
    }
    for (k, v) in &m.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.push((key, v.clone()));
    }
    if !pax.is_empty() {
        pax.sort();
        write_pax(b, &m.name, &pax)?;
    }
    h.set_cksum();
    b.append(&h, data.take(m.size))
}

fn write_pax<W: Write>(
    b: &mut tar::Builder<W>,
    name: &[u8],
    records: &[(Vec<u8>, Vec<u8>)],
) -> io::Result<()> {
    let mut body = Vec::new();
    for (k, v) in records {
        pax_record(&mut body, k, v);
    }
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|c| *c == b'/').next().unwrap_or(trimmed);
    let mut pax_name = b"PaxHeaders.0/".to_vec();
    pax_name.extend_from_slice(base);
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    set_bytes(&mut h.as_old_mut().name, &pax_name);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, body.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for (k, v) in [("path", "a"), ("path", &"x".repeat(93)[..]), ("mtime", "1")] {
            let mut out = Vec::new();
            pax_record(&mut out, k.as_bytes(), v.as_bytes());
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{text:?}");
        }
    }

    #[test]
    fn long_names_large_ids_and_xattrs_round_trip_through_the_parser() {
        let name = format!("{}/file", "d".repeat(150)).into_bytes();
        let mut m = Meta::bare(name.clone(), EntryType::Regular);
        m.uid = 1 << 31;
        m.gid = 7;
        m.size = 3;
        m.mtime = -10;
        m.xattrs = vec![(b"user.k".to_vec(), b"\0binary\xff".to_vec())];
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, &m, &b"abcdef"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(bytes.as_slice());
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path_bytes().as_ref(), name.as_slice());
        assert_eq!(e.header().uid().unwrap(), 1 << 31);
        assert_eq!(e.size(), 3);
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert!(exts.contains(&("mtime".into(), b"-10".to_vec())));
        assert!(exts.contains(&("SCHILY.xattr.user.k".into(), b"\0binary\xff".to_vec())));
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"abc");
        drop(e);
        assert!(entries.next().is_none());
    }
}
