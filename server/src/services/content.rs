use std::os::unix::fs::FileExt;
use std::sync::Arc;

use api::content_server::Content;
use api::WriteAction;
use berth_api::containerd::services::content::v1 as api;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{blocking, digest, filter, lease, namespace, paths, quick, ts, ts_system, BoxStream};
use crate::content::{Digest, IngestStatus};
use crate::metadata::content::{self as meta, NsWriter};
use crate::metadata::BlobRec;
use crate::Meta;

/// Read chunks and list batches, as containerd sizes them.
const CHUNK: usize = 1 << 20;
const LIST_BATCH: usize = 100;

pub struct ContentService(pub Arc<Meta>);

fn info_to_api(b: BlobRec) -> api::Info {
    api::Info {
        digest: b.digest,
        size: b.size,
        created_at: ts(b.created_at),
        updated_at: ts(b.updated_at),
        labels: b.labels,
    }
}

fn status_to_api(s: IngestStatus) -> api::Status {
    api::Status {
        started_at: ts_system(s.started_at),
        updated_at: ts_system(s.updated_at),
        r#ref: s.reference,
        offset: s.offset,
        total: s.total,
        expected: s.expected.map(|d| d.to_string()).unwrap_or_default(),
    }
}

fn optional_digest(s: &str) -> Result<Option<Digest>, Status> {
    if s.is_empty() {
        Ok(None)
    } else {
        digest(s).map(Some)
    }
}

#[tonic::async_trait]
impl Content for ContentService {
    async fn info(
        &self,
        r: Request<api::InfoRequest>,
    ) -> Result<Response<api::InfoResponse>, Status> {
        let ns = namespace(&r)?;
        let d = digest(&r.into_inner().digest)?;
        let b = meta::info(&self.0, &ns, &d)?;
        Ok(Response::new(api::InfoResponse {
            info: Some(info_to_api(b)),
        }))
    }

    async fn update(
        &self,
        r: Request<api::UpdateRequest>,
    ) -> Result<Response<api::UpdateResponse>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let info = r.info.unwrap_or_default();
        let d = digest(&info.digest)?;
        let p = paths(r.update_mask);
        let m = self.0.clone();
        let b = quick(&self.0, move || meta::update(&m, &ns, &d, info.labels, &p)).await?;
        Ok(Response::new(api::UpdateResponse {
            info: Some(info_to_api(b)),
        }))
    }

    type ListStream = BoxStream<api::ListContentResponse>;

    async fn list(
        &self,
        r: Request<api::ListContentRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let all: Vec<api::Info> = meta::list(&self.0, &ns, &f)?
            .into_iter()
            .map(info_to_api)
            .collect();
        let batches: Vec<_> = all
            .chunks(LIST_BATCH)
            .map(|c| Ok(api::ListContentResponse { info: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn delete(&self, r: Request<api::DeleteContentRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let d = digest(&r.into_inner().digest)?;
        let m = self.0.clone();
        quick(&self.0, move || meta::delete(&m, &ns, &d)).await?;
        Ok(Response::new(()))
    }

    type ReadStream = BoxStream<api::ReadContentResponse>;

    async fn read(
        &self,
        r: Request<api::ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        let d = digest(&r.digest)?;
        let (rec, file) = meta::open(&self.0, &ns, &d)?;
        let size = rec.size;
        if r.offset < 0 || r.offset > size {
            return Err(Status::out_of_range(format!(
                "content {d}: read offset {} beyond size {size}",
                r.offset
            )));
        }
        let end = if r.size <= 0 {
            size
        } else {
            (r.offset + r.size).min(size)
        };
        let start = r.offset;
        if end - start <= CHUNK as i64 {
            // One message: manifests, configs and indexes, the common case. Reading a small file
            // here costs less than handing it to a blocking thread.
            let msg = read_chunk(&file, &d, start, (end - start) as usize)?;
            return Ok(Response::new(Box::pin(tokio_stream::once(Ok(msg)))));
        }
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut off = start;
            while off < end {
                let n = ((end - off) as usize).min(CHUNK);
                let msg = read_chunk(&file, &d, off, n);
                let failed = msg.is_err();
                off += n as i64;
                // Stop when the client went away or after reporting an error.
                if tx.blocking_send(msg).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        r: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let ns = namespace(&r)?;
        let st = meta::status(&self.0, &ns, &r.into_inner().r#ref)?;
        Ok(Response::new(api::StatusResponse {
            status: Some(status_to_api(st)),
        }))
    }

    async fn list_statuses(
        &self,
        r: Request<api::ListStatusesRequest>,
    ) -> Result<Response<api::ListStatusesResponse>, Status> {
        let ns = namespace(&r)?;
        let f = filter(&r.into_inner().filters)?;
        let statuses = meta::statuses(&self.0, &ns, &f)?
            .into_iter()
            .map(status_to_api)
            .collect();
        Ok(Response::new(api::ListStatusesResponse { statuses }))
    }

    type WriteStream = BoxStream<api::WriteContentResponse>;

    async fn write(
        &self,
        r: Request<Streaming<api::WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let ns = namespace(&r)?;
        let lease = lease(&r)?;
        let mut input = r.into_inner();
        let m = self.0.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut session = WriteSession {
                m,
                ns,
                lease,
                writer: None,
            };
            loop {
                let req = match input.next().await {
                    None => break,
                    Some(Ok(req)) => req,
                    Some(Err(s)) => {
                        let _ = tx.send(Err(oversize_to_exhausted(s))).await;
                        break;
                    }
                };
                let commit = req.action == WriteAction::Commit as i32;
                let res = session.handle(req).await;
                let failed = res.is_err();
                if tx.send(res).await.is_err() || failed || commit {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort(&self, r: Request<api::AbortRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let reference = r.into_inner().r#ref;
        let m = self.0.clone();
        blocking(move || meta::abort(&m, &ns, &reference)).await?;
        Ok(Response::new(()))
    }
}

/// One Read reply: `n` bytes of the blob from `offset`.
fn read_chunk(
    file: &std::fs::File,
    d: &Digest,
    offset: i64,
    n: usize,
) -> Result<api::ReadContentResponse, Status> {
    let mut data = vec![0u8; n];
    file.read_exact_at(&mut data, offset as u64)
        .map_err(|e| Status::data_loss(format!("content {d}: {e}")))?;
    Ok(api::ReadContentResponse { offset, data })
}

/// tonic reports an oversized message as OutOfRange; containerd's clients expect
/// ResourceExhausted, as grpc-go sends it.
pub fn oversize_to_exhausted(s: Status) -> Status {
    if s.code() == tonic::Code::OutOfRange && s.message().contains("message length too large") {
        Status::resource_exhausted(s.message().to_string())
    } else {
        s
    }
}

/// One Write stream: lock-step, one response per request; the ingest is opened by the first.
struct WriteSession {
    m: Arc<Meta>,
    ns: String,
    lease: Option<String>,
    writer: Option<NsWriter>,
}

impl WriteSession {
    async fn handle(
        &mut self,
        req: api::WriteContentRequest,
    ) -> Result<api::WriteContentResponse, Status> {
        let action = WriteAction::try_from(req.action).map_err(|_| {
            Status::invalid_argument(format!("unknown write action {}", req.action))
        })?;
        let expected = optional_digest(&req.expected)?;
        if self.writer.is_none() {
            if req.r#ref.is_empty() {
                return Err(Status::invalid_argument(
                    "first message must have a reference",
                ));
            }
            let (m, ns, lease) = (self.m.clone(), self.ns.clone(), self.lease.clone());
            let (reference, total, exp) = (req.r#ref.clone(), req.total, expected.clone());
            let w =
                blocking(move || meta::writer(&m, &ns, &reference, total, exp, lease.as_deref()))
                    .await?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("writer opened above");
        if req.total > 0 {
            w.inner.set_total(req.total)?;
        }
        let mut resp = api::WriteContentResponse {
            action: req.action,
            ..Default::default()
        };
        match action {
            WriteAction::Stat => {}
            WriteAction::Write | WriteAction::Commit => {
                if !req.data.is_empty() {
                    tokio::task::block_in_place(|| w.inner.write_at(req.offset, &req.data))?;
                }
            }
        }
        let st = w.status();
        resp.started_at = ts_system(st.started_at);
        resp.updated_at = ts_system(st.updated_at);
        resp.offset = st.offset;
        resp.total = st.total;
        if action == WriteAction::Commit {
            let w = self.writer.take().expect("writer opened above");
            let m = self.m.clone();
            let total = req.total;
            let d = blocking(move || w.commit(&m, total, expected, req.labels)).await?;
            resp.digest = d.to_string();
        } else {
            resp.digest = w.inner.digest().to_string();
        }
        Ok(resp)
    }
}
