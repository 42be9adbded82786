//! A gRPC client for berthd's unix socket, for what `ctr` cannot do: container records without a
//! snapshotter, byte-exact content writes, leases in headers, and malformed requests.
//!
//! Calls are async; tests are plain `#[test]` functions (ctr is a blocking subprocess) that run
//! their gRPC parts on [`runtime`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_api::containerd::services as svc;
use svc::containers::v1::containers_client::ContainersClient;
use svc::content::v1::content_client::ContentClient;
use svc::content::v1::{WriteAction, WriteContentRequest, WriteContentResponse};
use svc::events::v1::events_client::EventsClient;
use svc::images::v1::images_client::ImagesClient;
use svc::leases::v1::leases_client::LeasesClient;
use svc::namespaces::v1::namespaces_client::NamespacesClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};

/// Header carrying the caller's namespace, as containerd's clients send it.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";
/// Header attaching new content and ingests to a lease.
pub const LEASE_HEADER: &str = "containerd-lease";

/// Client-side message limit: above the daemon's 16 MiB, so oversized requests reach the daemon
/// and its refusal is what the tests see.
pub const CLIENT_MAX_MESSAGE: usize = 64 << 20;

/// Chunk size of [`write_blob`], as ctr writes.
const WRITE_CHUNK: usize = 1 << 20;

/// A single-threaded runtime for a test's gRPC calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime for the test")
}

/// A connection to one daemon; clients made from it share the HTTP/2 connection.
#[derive(Clone)]
pub struct Grpc {
    pub channel: Channel,
}

/// Sets both message limits on a generated client.
macro_rules! sized {
    ($client:expr) => {
        $client
            .max_decoding_message_size(CLIENT_MAX_MESSAGE)
            .max_encoding_message_size(CLIENT_MAX_MESSAGE)
    };
}

impl Grpc {
    /// Dials the unix socket at `socket`.
    pub async fn connect(socket: &Path) -> anyhow::Result<Grpc> {
        let path: PathBuf = socket.to_path_buf();
        // The URI is required by the API but unused: every connection goes to the socket.
        let channel = Endpoint::try_from("http://localhost")
            .context("endpoint")?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .with_context(|| format!("connect to {}", socket.display()))?;
        Ok(Grpc { channel })
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        sized!(ContainersClient::new(self.channel.clone()))
    }

    pub fn content(&self) -> ContentClient<Channel> {
        sized!(ContentClient::new(self.channel.clone()))
    }

    pub fn images(&self) -> ImagesClient<Channel> {
        sized!(ImagesClient::new(self.channel.clone()))
    }

    pub fn leases(&self) -> LeasesClient<Channel> {
        sized!(LeasesClient::new(self.channel.clone()))
    }

    pub fn namespaces(&self) -> NamespacesClient<Channel> {
        sized!(NamespacesClient::new(self.channel.clone()))
    }

    pub fn events(&self) -> EventsClient<Channel> {
        sized!(EventsClient::new(self.channel.clone()))
    }
}

/// `msg` as a request in namespace `ns`.
pub fn req<T>(ns: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        NAMESPACE_HEADER,
        MetadataValue::try_from(ns).expect("namespace is a valid header value"),
    );
    r
}

/// `msg` as a request in namespace `ns` under lease `lease`.
pub fn leased<T>(ns: &str, lease: &str, msg: T) -> Request<T> {
    let mut r = req(ns, msg);
    r.metadata_mut().insert(
        LEASE_HEADER,
        MetadataValue::try_from(lease).expect("lease is a valid header value"),
    );
    r
}

/// Asserts that `res` failed with `code`, returning the message.
pub fn expect_code<T: std::fmt::Debug>(res: Result<T, Status>, code: Code) -> String {
    match res {
        Ok(v) => panic!("expected {code:?}, got success: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected status: {s:?}");
            s.message().to_string()
        }
    }
}

/// One Write stream, driven in lock step: every request gets its response before the next goes.
pub struct Ingest {
    tx: Option<mpsc::Sender<WriteContentRequest>>,
    rx: Streaming<WriteContentResponse>,
    reference: String,
}

impl Ingest {
    /// Opens a Write stream for `reference` in `ns`, optionally under `lease`. Nothing is sent
    /// yet: the ingest starts with the first request.
    pub async fn open(
        grpc: &Grpc,
        ns: &str,
        lease: Option<&str>,
        reference: &str,
    ) -> Result<Ingest, Status> {
        let (tx, rx) = mpsc::channel(1);
        let stream = ReceiverStream::new(rx);
        let request = match lease {
            Some(l) => leased(ns, l, stream),
            None => req(ns, stream),
        };
        let rx = grpc.content().write(request).await?.into_inner();
        Ok(Ingest {
            tx: Some(tx),
            rx,
            reference: reference.to_string(),
        })
    }

    /// Reopens `reference` and returns it with its offset, retrying while the ref is still locked
    /// (Unavailable) for up to 10 s, as containerd's clients do: a dropped stream releases its
    /// ref only once the daemon has seen the stream end.
    pub async fn resume(
        grpc: &Grpc,
        ns: &str,
        lease: Option<&str>,
        reference: &str,
    ) -> Result<(Ingest, i64), Status> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut ingest = Ingest::open(grpc, ns, lease, reference).await?;
            match ingest.stat().await {
                Ok(st) => return Ok((ingest, st.offset)),
                Err(s)
                    if s.code() == Code::Unavailable && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    /// Sends one request (the ref is filled in) and waits for its response.
    pub async fn send(
        &mut self,
        mut r: WriteContentRequest,
    ) -> Result<WriteContentResponse, Status> {
        r.r#ref = self.reference.clone();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("write stream already closed"))?;
        if tx.send(r).await.is_err() {
            // The daemon ended the stream: its status says why.
            return match self.rx.message().await {
                Err(s) => Err(s),
                Ok(_) => Err(Status::unknown("write stream closed by the daemon")),
            };
        }
        self.rx
            .message()
            .await?
            .ok_or_else(|| Status::unknown("write stream ended without a response"))
    }

    /// The ingest's status (offset, total) without writing.
    pub async fn stat(&mut self) -> Result<WriteContentResponse, Status> {
        self.send(WriteContentRequest {
            action: WriteAction::Stat as i32,
            ..Default::default()
        })
        .await
    }

    /// Writes `data` at `offset`.
    pub async fn write(
        &mut self,
        offset: i64,
        data: &[u8],
    ) -> Result<WriteContentResponse, Status> {
        self.send(WriteContentRequest {
            action: WriteAction::Write as i32,
            offset,
            data: data.to_vec(),
            ..Default::default()
        })
        .await
    }

    /// Commits with the expected size and digest (either may be empty/zero), writing `data` at
    /// `offset` first.
    pub async fn commit(
        &mut self,
        offset: i64,
        data: &[u8],
        total: i64,
        expected: &str,
        labels: HashMap<String, String>,
    ) -> Result<WriteContentResponse, Status> {
        let resp = self
            .send(WriteContentRequest {
                action: WriteAction::Commit as i32,
                offset,
                data: data.to_vec(),
                total,
                expected: expected.to_string(),
                labels,
                ..Default::default()
            })
            .await;
        self.close();
        resp
    }

    /// Ends the client's side of the stream, as a client that goes away without committing.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// Writes `data` as a blob in `ns` (under `lease` if given) through the Write protocol: Stat,
/// Writes of 1 MiB, Commit with the size and digest. Returns the committed digest.
pub async fn write_blob(
    grpc: &Grpc,
    ns: &str,
    lease: Option<&str>,
    reference: &str,
    data: &[u8],
) -> Result<String, Status> {
    let digest = crate::image::sha256_digest(data);
    let mut ingest = Ingest::open(grpc, ns, lease, reference).await?;
    let start = ingest.stat().await?.offset;
    let mut offset = usize::try_from(start).expect("offsets are not negative");
    while offset < data.len() {
        let end = (offset + WRITE_CHUNK).min(data.len());
        ingest.write(offset as i64, &data[offset..end]).await?;
        offset = end;
    }
    let done = ingest
        .commit(
            data.len() as i64,
            &[],
            data.len() as i64,
            &digest,
            HashMap::new(),
        )
        .await?;
    assert_eq!(done.digest, digest, "daemon committed another digest");
    Ok(digest)
}

/// Reads a whole blob in `ns` through the Read stream.
pub async fn read_blob(grpc: &Grpc, ns: &str, digest: &str) -> Result<Vec<u8>, Status> {
    let mut stream = grpc
        .content()
        .read(req(
            ns,
            svc::content::v1::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            },
        ))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        assert_eq!(chunk.offset, out.len() as i64, "read chunks out of order");
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

/// Aborts the ingest `reference` in `ns`, retrying for up to 10 s while its ref is still locked
/// (Unavailable) by a stream the daemon has not yet seen end.
pub async fn abort_ingest(grpc: &Grpc, ns: &str, reference: &str) -> Result<(), Status> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = grpc
            .content()
            .abort(req(
                ns,
                svc::content::v1::AbortRequest {
                    r#ref: reference.to_string(),
                },
            ))
            .await;
        match res {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(s) => return Err(s),
        }
    }
}
