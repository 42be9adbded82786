//! Large images of incompressible data for benchmarks: import, unpack and content throughput
//! without the cost of compressing on the generation side.

use std::path::Path;

use super::oci::{image_config, Layer, OciWriter};
use super::tarball::TarWriter;
use super::{media_type, sha256_digest, ImageInfo};

/// Largest single file in a generated layer; several files per layer exercise per-entry costs.
const MAX_FILE: u64 = 8 << 20;

/// xorshift64* seeded through splitmix64: fast, deterministic, and its output does not compress.
/// Not for anything that needs unpredictability.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // A zero state would stay zero forever.
        XorShift(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut x = self.0;
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let bytes = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            rest.copy_from_slice(&bytes[..rest.len()]);
        }
        self.0 = x;
    }
}

/// One uncompressed layer holding `bytes` of random data in files of at most `MAX_FILE`.
fn data_layer(index: usize, bytes: u64, rng: &mut XorShift) -> anyhow::Result<Vec<u8>> {
    let files = bytes.div_ceil(MAX_FILE).max(1);
    // Payload plus a 512-byte header and up to 511 bytes of padding per file, plus the trailer.
    let capacity = bytes + files * 1024 + 16 * 1024;
    let mut tar = TarWriter::new(Vec::with_capacity(capacity as usize));
    let dir = format!("data/layer{index:03}");
    if index == 0 {
        tar.dir("data", 0o755)?;
    }
    tar.dir(&dir, 0o755)?;
    let mut buf = vec![0u8; MAX_FILE.min(bytes) as usize];
    let mut left = bytes;
    for file in 0..files {
        let size = left.min(MAX_FILE);
        let chunk = &mut buf[..size as usize];
        rng.fill(chunk);
        tar.file(&format!("{dir}/file{file:05}.bin"), 0o644, chunk)?;
        left -= size;
    }
    tar.finish()
}

/// Writes an OCI image layout tarball named `name` with `layers` uncompressed layers holding
/// `total_bytes` of pseudo-random file data in all (split evenly, the last layer takes the
/// remainder). The same `seed` always produces the same bytes and digests.
pub fn generated_image_tar(
    out: &Path,
    name: &str,
    layers: usize,
    total_bytes: u64,
    seed: u64,
) -> anyhow::Result<ImageInfo> {
    anyhow::ensure!(
        layers > 0,
        "generated image {name:?}: needs at least one layer"
    );
    let mut rng = XorShift::new(seed);
    let per_layer = total_bytes / layers as u64;
    let mut writer = OciWriter::create(out)?;
    for index in 0..layers {
        let bytes = if index + 1 == layers {
            total_bytes - per_layer * (layers as u64 - 1)
        } else {
            per_layer
        };
        let tar = data_layer(index, bytes, &mut rng)?;
        let diff_id = sha256_digest(&tar);
        writer.add_layer(Layer {
            media_type: media_type::OCI_LAYER,
            blob: tar,
            diff_id,
        })?;
    }
    let config = image_config(writer.diff_ids(), None, "berth-tests: generated data");
    writer.finish(name, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_incompressible() {
        let mut a = vec![0u8; 1 << 16];
        let mut b = vec![0u8; 1 << 16];
        XorShift::new(7).fill(&mut a);
        XorShift::new(7).fill(&mut b);
        assert_eq!(a, b);
        let mut c = vec![0u8; 1 << 16];
        XorShift::new(8).fill(&mut c);
        assert_ne!(a, c);

        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &a).expect("gzip to memory");
        let packed = enc.finish().expect("gzip to memory");
        assert!(packed.len() > a.len(), "random data should not compress");
    }

    /// Benchmark-sized image; run with `--ignored` to see how long generation takes here.
    #[test]
    #[ignore]
    fn generates_benchmark_image() {
        let dir = tempfile::tempdir().expect("temp dir");
        let start = std::time::Instant::now();
        let info = generated_image_tar(&dir.path().join("big.tar"), "big:1", 4, 300 << 20, 1)
            .expect("generate");
        eprintln!("300 MiB in 4 layers: {:?}, {info:?}", start.elapsed());
        assert!(info.total_blob_bytes > 300 << 20);
    }
}
