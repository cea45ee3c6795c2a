//! Mutual-TLS connections for the tonic server (tonic's own TLS feature is not
//! used): accept TCP, handshake per connection in its own task, hand
//! successful streams to the server. A failed handshake (a port scanner, a
//! client without the pinned certificate) is logged and never stops serving.
//!
//! The server certificate comes from a [`NodeCertificate`] each handshake
//! reads anew, so certificate rotation swaps it live: new handshakes present
//! the new certificate, established connections are not touched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use nexpoint_certs::NodeCertificate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::state_dir::StateDir;

/// A client that does not finish its handshake in time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const PENDING_CONNECTIONS: usize = 64;

/// A TLS stream tonic can serve.
pub struct TlsConnection(TlsStream<TcpStream>);

impl TlsConnection {
    /// The client certificate the peer presented (the pinned control plane's).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|c| c.as_ref().to_vec())
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let (tcp, _) = self.0.get_ref();
        TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The mutual-TLS server config from the state dir's certificates, and the
/// handle that replaces the node certificate it presents.
pub fn server_config(
    state_dir: &StateDir,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<NodeCertificate>)> {
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let node_cert_path = state_dir.node_cert();
    let certificate =
        NodeCertificate::new(&read(node_cert_path.clone())?, &read(state_dir.node_key())?)
            .with_context(|| format!("invalid node certificate {}", node_cert_path.display()))?;
    let config = nexpoint_certs::node_server_config_with_certificate(
        &read(state_dir.ca_cert())?,
        certificate.clone(),
        &read(state_dir.control_plane_cert())?,
    )
    .context("invalid node certificates")?;
    Ok((config, certificate))
}

/// Accepts on `listener` until `stop`, yielding handshaken connections.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    stop: CancellationToken,
) -> ReceiverStream<Result<TlsConnection, io::Error>> {
    let (tx, rx) = mpsc::channel(PENDING_CONNECTIONS);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            tokio::spawn(handshake(acceptor.clone(), tcp, peer, tx.clone()));
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Result<TlsConnection, io::Error>>,
) {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            tracing::debug!(%peer, "control plane connected");
            let _ = tx.send(Ok(TlsConnection(stream))).await;
        }
        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "TLS handshake refused"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
