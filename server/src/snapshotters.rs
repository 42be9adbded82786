//! The snapshotters berthd serves: `native` always, and `overlayfs` where the kernel mounts it on
//! the root's filesystem (clients default to `overlayfs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use berth_snapshotter::Snapshotter;

use crate::error::Result;

pub fn open_all(dir: &Path) -> Result<HashMap<String, Arc<dyn Snapshotter>>> {
    let mut out: HashMap<String, Arc<dyn Snapshotter>> = HashMap::new();
    let native = berth_snapshotter::native::Native::open(&dir.join("native"))?;
    out.insert("native".into(), Arc::new(native));
    let overlay_root = dir.join("overlayfs");
    if berth_snapshotter::overlay::supported(dir) {
        out.insert(
            "overlayfs".into(),
            Arc::new(berth_snapshotter::overlay::Overlay::open(&overlay_root)?),
        );
    } else {
        tracing::warn!(
            "overlayfs is not supported under {}: serving the native snapshotter only",
            dir.display()
        );
    }
    Ok(out)
}
