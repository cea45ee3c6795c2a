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
pub(crate) enum ConnectError {
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

pub(crate) async fn connect(pki: &Pki, node: &Node) -> Result<Agent, ConnectError> {
    let fingerprint = node
        .certificate_fingerprint
        .as_deref()
        .ok_or(ConnectError::NotEnrolled)?;
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
    Ok(AgentClient::new(channel))
}

fn bracket(address: &str, port: i64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}
