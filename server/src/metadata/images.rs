//! Images: a name pointing at a target descriptor (an index or a manifest in the content store).

use berth_api::containerd::services::images::v1::{ImageCreate, ImageDelete, ImageUpdate};

use super::{
    check_key_part, encode, key, now_nanos, prefix, set_or_remove, Batch, DescriptorRec, ImageRec,
    Kind,
};
use crate::content::Digest;
use crate::error::{Error, Result};
use crate::filters::{label_field, Adaptor, Filter};
use crate::identifiers;
use crate::Meta;

pub const TOPIC_CREATE: &str = "/images/create";
pub const TOPIC_UPDATE: &str = "/images/update";
pub const TOPIC_DELETE: &str = "/images/delete";

impl Adaptor for ImageRec {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        match first.as_str() {
            "name" if rest.is_empty() => Some(self.name.clone()),
            "labels" => label_field(&self.labels, rest),
            "annotations" => label_field(&self.target.as_ref()?.annotations, rest),
            "target" => {
                let t = self.target.as_ref()?;
                match rest.first()?.as_str() {
                    "digest" => Some(t.digest.clone()),
                    "mediatype" => Some(t.media_type.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn validate(img: &ImageRec) -> Result<()> {
    if img.name.is_empty() {
        return Err(Error::invalid("image name must not be empty"));
    }
    check_key_part("image name", &img.name)?;
    identifiers::validate_labels(&img.labels)?;
    let t = img
        .target
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("image {:?}: target must be set", img.name)))?;
    Digest::parse(&t.digest).map_err(|e| e.context(format!("image {:?}: target", img.name)))?;
    if t.media_type.is_empty() {
        return Err(Error::invalid(format!(
            "image {:?}: target media type must not be empty",
            img.name
        )));
    }
    Ok(())
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!("image {name:?}: not found"))
}

pub fn get(m: &Meta, ns: &str, name: &str) -> Result<ImageRec> {
    m.db.get(&key(Kind::Image, &[ns, name]))?
        .ok_or_else(|| not_found(name))
}

pub fn list(m: &Meta, ns: &str, filter: &Filter) -> Result<Vec<ImageRec>> {
    Ok(m.db
        .scan::<ImageRec>(&prefix(Kind::Image, &[ns]))?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| filter.matches(r))
        .collect())
}

pub fn create(m: &Meta, ns: &str, mut img: ImageRec) -> Result<ImageRec> {
    validate(&img)?;
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Image, &[ns, &img.name]);
        if m.db.contains(&k)? {
            return Err(Error::exists(format!(
                "image {:?}: already exists",
                img.name
            )));
        }
        let now = now_nanos();
        img.created_at = now;
        img.updated_at = now;
        let mut b = Batch::default();
        m.db.ensure_namespace(&mut b, ns)?;
        b.insert(k, encode(&img));
        m.db.commit(b)?;
    }
    m.events.publish(
        ns,
        TOPIC_CREATE,
        &ImageCreate {
            name: img.name.clone(),
            labels: img.labels.clone(),
        },
    );
    Ok(img)
}

/// Field paths: `labels`, `labels.<k>`, `target`, `annotations`, `annotations.<k>`; an empty mask
/// replaces everything but the creation time.
pub fn update(m: &Meta, ns: &str, img: ImageRec, paths: &[String]) -> Result<ImageRec> {
    if img.name.is_empty() {
        return Err(Error::invalid("image name must not be empty"));
    }
    check_key_part("image name", &img.name)?;
    let updated = {
        let _w = m.db.write_lock();
        let k = key(Kind::Image, &[ns, &img.name]);
        let mut cur: ImageRec = m.db.get(&k)?.ok_or_else(|| not_found(&img.name))?;
        if paths.is_empty() {
            let created = cur.created_at;
            cur = img.clone();
            cur.created_at = created;
        } else {
            for p in paths {
                apply_path(&mut cur, &img, p)?;
            }
        }
        validate(&cur)?;
        cur.updated_at = now_nanos();
        let mut b = Batch::default();
        b.insert(k, encode(&cur));
        m.db.commit(b)?;
        cur
    };
    m.events.publish(
        ns,
        TOPIC_UPDATE,
        &ImageUpdate {
            name: updated.name.clone(),
            labels: updated.labels.clone(),
        },
    );
    Ok(updated)
}

fn apply_path(cur: &mut ImageRec, img: &ImageRec, p: &str) -> Result<()> {
    let empty = DescriptorRec::default();
    let new_target = img.target.as_ref().unwrap_or(&empty);
    if let Some(k) = p.strip_prefix("labels.") {
        set_or_remove(&mut cur.labels, k, img.labels.get(k));
    } else if let Some(k) = p.strip_prefix("annotations.") {
        let t = cur.target.get_or_insert_with(Default::default);
        set_or_remove(&mut t.annotations, k, new_target.annotations.get(k));
    } else {
        match p {
            "labels" => cur.labels = img.labels.clone(),
            "target" => cur.target = img.target.clone(),
            "annotations" => {
                cur.target.get_or_insert_with(Default::default).annotations =
                    new_target.annotations.clone()
            }
            _ => {
                return Err(Error::invalid(format!(
                    "cannot update {p:?} field on image {:?}",
                    img.name
                )))
            }
        }
    }
    Ok(())
}

/// Deletes the image; its content goes with the next collection (at once when `sync`).
pub fn delete(m: &Meta, ns: &str, name: &str, sync: bool) -> Result<()> {
    {
        let _w = m.db.write_lock();
        let k = key(Kind::Image, &[ns, name]);
        if !m.db.contains(&k)? {
            return Err(not_found(name));
        }
        let mut b = Batch::default();
        b.remove(k);
        m.db.commit(b)?;
    }
    m.events.publish(
        ns,
        TOPIC_DELETE,
        &ImageDelete {
            name: name.to_string(),
        },
    );
    m.gc.after_delete(m, sync)
}
