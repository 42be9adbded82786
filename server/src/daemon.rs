//! Starting and stopping the daemon: directories and their modes, the root lock, the socket, the
//! gRPC server with every service, the collector, and a clean shutdown on SIGTERM or SIGINT.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_api::containerd::services as svc;
use berth_api::grpc::health::v1::health_server::HealthServer;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::codegen::http;

use crate::config::Config;
use crate::gc::Gc;
use crate::services::diff::DiffService;
use crate::services::{
    containers::ContainersService, content::ContentService, events::EventsService,
    health::HealthService, images::ImagesService, introspection::IntrospectionService,
    leases::LeasesService, namespaces::NamespacesService, snapshots::SnapshotsService,
    version::VersionService,
};
use crate::Meta;

fn make_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("create {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// Holds the root exclusively for the life of the daemon: two daemons on one root would corrupt it.
fn lock_root(root: &Path) -> anyhow::Result<Flock<fs::File>> {
    let path = root.join("berthd.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "root {} is in use by another berthd (lock {}: {e})",
            root.display(),
            path.display()
        )
    })
}

fn bind_socket(cfg: &Config) -> anyhow::Result<UnixListener> {
    let addr = &cfg.grpc.address;
    if let Some(dir) = addr.parent() {
        if !dir.exists() {
            make_dir(dir, 0o711)?;
        }
    }
    if addr.exists() {
        if std::os::unix::net::UnixStream::connect(addr).is_ok() {
            bail!("socket {} is in use by another daemon", addr.display());
        }
        fs::remove_file(addr).with_context(|| format!("remove stale socket {}", addr.display()))?;
    }
    let l = UnixListener::bind(addr).with_context(|| format!("listen on {}", addr.display()))?;
    fs::set_permissions(addr, fs::Permissions::from_mode(0o660))?;
    nix::unistd::chown(
        addr,
        Some(nix::unistd::Uid::from_raw(cfg.grpc.uid)),
        Some(nix::unistd::Gid::from_raw(cfg.grpc.gid)),
    )
    .with_context(|| format!("chown {}", addr.display()))?;
    Ok(l)
}

/// grpc-go answers an oversized message with ResourceExhausted and containerd's clients expect
/// that; tonic says OutOfRange. Rewrites the trailers-only status of such a reply.
fn oversize_status<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let h = resp.headers_mut();
    if let Some(code) = h.get("grpc-status").filter(|v| *v != "0") {
        let msg = h
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug!("reply: grpc-status {code:?} {msg}");
    }
    let too_large = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if too_large {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    resp
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    make_dir(&cfg.root, 0o700)?;
    make_dir(&cfg.state, 0o711)?;
    let _lock = lock_root(&cfg.root)?;
    let meta: Arc<Meta> = Meta::open(&cfg.root).map_err(|e| anyhow::anyhow!("{e}"))?;
    let uuid = meta.db.uuid().map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = bind_socket(&cfg)?;
    tracing::info!(
        address = %cfg.grpc.address.display(),
        root = %cfg.root.display(),
        state = %cfg.state.display(),
        %uuid,
        "berthd {} serving",
        crate::services::version::VERSION
    );

    let gc = tokio::spawn(Gc::run(
        meta.clone(),
        Duration::from_millis(cfg.gc.deletion_delay_ms),
    ));

    let (rx, tx) = (
        cfg.grpc.max_recv_message_size,
        cfg.grpc.max_send_message_size,
    );
    macro_rules! sized {
        ($server:expr) => {
            $server
                .max_decoding_message_size(rx)
                .max_encoding_message_size(tx)
        };
    }
    let router = tonic::transport::Server::builder()
        .trace_fn(|req| tracing::debug_span!("grpc", path = %req.uri().path()))
        .layer(tower::util::MapResponseLayer::new(oversize_status))
        .add_service(sized!(
            svc::version::v1::version_server::VersionServer::new(VersionService)
        ))
        .add_service(sized!(HealthServer::new(HealthService)))
        .add_service(sized!(
            svc::introspection::v1::introspection_server::IntrospectionServer::new(
                IntrospectionService { meta: meta.clone() }
            )
        ))
        .add_service(sized!(
            svc::namespaces::v1::namespaces_server::NamespacesServer::new(NamespacesService(
                meta.clone()
            ))
        ))
        .add_service(sized!(
            svc::content::v1::content_server::ContentServer::new(ContentService(meta.clone()))
        ))
        .add_service(sized!(svc::images::v1::images_server::ImagesServer::new(
            ImagesService(meta.clone())
        )))
        .add_service(sized!(svc::leases::v1::leases_server::LeasesServer::new(
            LeasesService(meta.clone())
        )))
        .add_service(sized!(
            svc::containers::v1::containers_server::ContainersServer::new(ContainersService(
                meta.clone()
            ))
        ))
        .add_service(sized!(svc::events::v1::events_server::EventsServer::new(
            EventsService(meta.clone())
        )))
        .add_service(sized!(
            svc::snapshots::v1::snapshots_server::SnapshotsServer::new(SnapshotsService(
                meta.clone()
            ))
        ));
    let router = router.add_service(sized!(svc::diff::v1::diff_server::DiffServer::new(
        DiffService(meta.clone())
    )));

    let served = router
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await;
    gc.abort();
    let _ = fs::remove_file(&cfg.grpc.address);
    meta.db.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    served.context("serve")?;
    tracing::info!("stopped");
    Ok(())
}
