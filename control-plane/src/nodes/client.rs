//! A gRPC channel to one node over mutual TLS, pinning the node's certificate.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use nexpoint_proto::agent::agent_client::AgentClient;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::pki::Pki;
use crate::store::Node;

pub(crate) type Agent = AgentClient<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("node is not enrolled yet")]
    NotEnrolled,
    #[error("TLS setup: {0}")]
    Tls(#[from] nexpoint_certs::CertError),
    #[error("cannot reach {address}: {source}")]
    Transport {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Which of the node's pinned certificates it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    Current,
    /// The certificate of an unfinished rotation: the node installed it.
    Next,
}

/// Connects to the node, trusting only its pinned certificate, or the next
/// one while a rotation is under way.
pub(crate) async fn connect(pki: &Pki, node: &Node) -> Result<(Agent, Pin), ConnectError> {
    let current = node
        .certificate_fingerprint
        .as_deref()
        .ok_or(ConnectError::NotEnrolled)?;
    match connect_pinned(pki, node, current).await {
        Ok(agent) => Ok((agent, Pin::Current)),
        Err(first) => match node.next_certificate_fingerprint.as_deref() {
            Some(next) => match connect_pinned(pki, node, next).await {
                Ok(agent) => Ok((agent, Pin::Next)),
                Err(_) => Err(first),
            },
            None => Err(first),
        },
    }
}

async fn connect_pinned(pki: &Pki, node: &Node, fingerprint: &str) -> Result<Agent, ConnectError> {
    let config = nexpoint_certs::control_plane_client_config(
        pki.ca.cert_pem(),
        &pki.client.cert_pem,
        &pki.client.key_pem,
        fingerprint,
    )?;
    let connector = TlsConnector::from(Arc::clone(&config));
    let server_name = ServerName::try_from(nexpoint_certs::node_server_name(node.id))
        .expect("node server names are valid DNS names");
    let target = format!("{}:{}", node.address, node.port);
    // The URI only satisfies tonic; the connector below dials `target`.
    let endpoint = Endpoint::from_shared(format!("http://{}", bracket(&node.address, node.port)))
        .map_err(|source| ConnectError::Transport {
            address: target.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let dial = target.clone();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let dial = dial.clone();
            async move {
                let tcp = TcpStream::connect(&dial).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|source| ConnectError::Transport {
            address: target,
            source,
        })?;
    Ok(AgentClient::new(channel)
        .max_decoding_message_size(nexpoint_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(nexpoint_proto::MAX_MESSAGE_BYTES))
}

fn bracket(address: &str, port: i64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}
