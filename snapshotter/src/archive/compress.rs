//! Layer compression: which one a media type names, and a reader that undoes it.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression a layer media type names, as containerd's `images.DiffCompression` reads
/// them: OCI types by their last `+suffix`, docker types by name. Wrapped types (such as
/// `+encrypted`) and anything else are InvalidArgument.
pub fn compression_for(media_type: &str) -> Result<Compression> {
    let mut parts = media_type.split('+');
    let base = parts.next().unwrap_or_default();
    let suffixes: Vec<&str> = parts.collect();
    let unsupported = || Error::invalid(format!("layer media type {media_type:?}: not supported"));
    match base {
        OCI_LAYER | OCI_LAYER_NONDIST => match suffixes.as_slice() {
            [] => Ok(Compression::None),
            ["gzip"] => Ok(Compression::Gzip),
            ["zstd"] => Ok(Compression::Zstd),
            _ => Err(unsupported()),
        },
        _ if !suffixes.is_empty() => Err(unsupported()),
        // Often gzip despite the name; `decompress` sniffs, as containerd does.
        DOCKER_LAYER | DOCKER_LAYER_FOREIGN => Ok(Compression::None),
        DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => Ok(Compression::Gzip),
        DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
        _ => Err(unsupported()),
    }
}

/// A reader of the uncompressed layer. For [`Compression::None`] the first bytes are sniffed
/// and a gzip or zstd stream is decompressed anyway (containerd's `DecompressStream` always
/// sniffs; docker's uncompressed media type is often put on compressed blobs). Corrupt input
/// surfaces as InvalidData errors from the reader.
pub fn decompress<'a>(c: Compression, r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(Zstd::new(BufReader::new(r))),
        Compression::None => {
            let mut r = r;
            let mut head = [0u8; 4];
            let mut n = 0;
            while n < head.len() {
                match r.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("read layer", e)),
                }
            }
            let head = &head[..n];
            let whole = Cursor::new(head.to_vec()).chain(r);
            if head.starts_with(GZIP_MAGIC) {
                Box::new(flate2::read::MultiGzDecoder::new(whole))
            } else if head.starts_with(ZSTD_MAGIC) {
                Box::new(Zstd::new(BufReader::new(whole)))
            } else {
                Box::new(whole)
            }
        }
    })
}

/// A zstd stream of any number of frames (parallel compressors write several), skippable
/// frames skipped and content checksums verified. `ruzstd` decodes one frame at a time.
struct Zstd<R> {
    src: R,
    dec: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Zstd<R> {
    fn new(src: R) -> Self {
        Zstd {
            src,
            dec: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.src.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.dec.reset(&mut self.src) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let want = u64::from(length);
                        let got = io::copy(&mut (&mut self.src).take(want), &mut io::sink())?;
                        if got != want {
                            return Err(corrupt("truncated skippable frame"));
                        }
                    }
                    Err(e) => return Err(corrupt(e)),
                }
                continue;
            }
            if self.dec.can_collect() > 0 {
                return self.dec.read(buf);
            }
            if self.dec.is_finished() {
                if let Some(want) = self.dec.get_checksum_from_data() {
                    if self.dec.get_calculated_checksum() != Some(want) {
                        return Err(corrupt("content checksum mismatch"));
                    }
                }
                self.in_frame = false;
                continue;
            }
            self.dec
                .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                .map_err(corrupt)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn media_types() {
        let c = |m: &str| compression_for(m).map_err(|e| e.kind);
        assert_eq!(c(OCI_LAYER), Ok(Compression::None));
        assert_eq!(c(&format!("{OCI_LAYER}+gzip")), Ok(Compression::Gzip));
        assert_eq!(c(&format!("{OCI_LAYER}+zstd")), Ok(Compression::Zstd));
        assert_eq!(
            c(&format!("{OCI_LAYER_NONDIST}+gzip")),
            Ok(Compression::Gzip)
        );
        assert_eq!(
            c(&format!("{OCI_LAYER_NONDIST}+zstd")),
            Ok(Compression::Zstd)
        );
        assert_eq!(c(OCI_LAYER_NONDIST), Ok(Compression::None));
        assert_eq!(c(DOCKER_LAYER_GZIP), Ok(Compression::Gzip));
        assert_eq!(c(DOCKER_LAYER_FOREIGN_GZIP), Ok(Compression::Gzip));
        assert_eq!(c(DOCKER_LAYER_ZSTD), Ok(Compression::Zstd));
        assert_eq!(c(DOCKER_LAYER), Ok(Compression::None));
        for bad in [
            "application/json",
            "",
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted",
            "application/vnd.oci.image.manifest.v1+json",
        ] {
            assert_eq!(c(bad), Err(ErrorKind::InvalidArgument), "{bad}");
        }
    }

    fn read_all(c: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompress(c, data)
            .expect("decompress")
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn none_sniffs_and_passes_through() {
        let plain = b"not compressed at all".to_vec();
        assert_eq!(read_all(Compression::None, &plain).unwrap(), plain);
        assert_eq!(read_all(Compression::None, b"ab").unwrap(), b"ab");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(read_all(Compression::None, &gz).unwrap(), plain);
        let zs = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(read_all(Compression::None, &zs).unwrap(), plain);
    }

    #[test]
    fn zstd_frames_concatenate_and_skippable_frames_are_skipped() {
        let level = ruzstd::encoding::CompressionLevel::Fastest;
        let mut data = ruzstd::encoding::compress_to_vec(&b"first "[..], level);
        // A skippable frame: magic 0x184D2A50..5F, little-endian length, payload.
        data.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        data.extend(ruzstd::encoding::compress_to_vec(&b"second"[..], level));
        assert_eq!(read_all(Compression::Zstd, &data).unwrap(), b"first second");
    }

    #[test]
    fn corrupt_input_is_invalid_data() {
        let level = ruzstd::encoding::CompressionLevel::Fastest;
        let mut data = ruzstd::encoding::compress_to_vec(&[7u8; 4096][..], level);
        data.truncate(data.len() / 2);
        let e = read_all(Compression::Zstd, &data).unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        ));
        let e = read_all(Compression::Gzip, b"definitely not gzip").unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
        ));
    }
}
