//! Keep-alive HTTP/1.1 connections to the API host, for [`ApiClient`](super::ApiClient).
//!
//! A connection is a TCP stream (TLS on top for `https`) driven by hyper's `client::conn::http1`
//! on its own task. A call takes an idle connection or opens one; after it has read a whole answer
//! it hands the connection back. Idle connections are a stack: the newest is reused first, and
//! once the top one has been idle longer than [`IDLE_TIMEOUT`] every one below it has too. There is
//! no reaper task: an idle connection closes when the server closes it, when a later call finds it
//! too old, or when the client is dropped.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a connection may sit idle and still be reused: reqwest's default, and shorter than
/// the point where NAT tables and load balancers tend to drop a silent connection without a word.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The requests this client sends have no body.
pub(super) type Sender = SendRequest<Empty<Bytes>>;

/// Opens connections to one host.
pub(super) struct Connector {
    /// The host as the resolver takes it (an IPv6 address without brackets).
    host: String,
    port: u16,
    tls: Option<Tls>,
    timeout: Duration,
}

/// What a TLS handshake needs: the client configuration and the name the certificate must carry.
pub(super) struct Tls {
    pub(super) connector: tokio_rustls::TlsConnector,
    pub(super) server_name: ServerName<'static>,
}

/// Why no connection was opened. No variant holds the request, so none can print its URL.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("cannot connect to the API host")]
    Tcp(#[source] io::Error),
    #[error("TLS handshake with the API host failed")]
    Tls(#[source] io::Error),
    #[error("HTTP/1.1 handshake failed")]
    Http(#[source] hyper::Error),
    #[error("connecting took longer than {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error("error sending request")]
    Http(#[source] hyper::Error),
}

impl Connector {
    pub(super) fn new(host: String, port: u16, tls: Option<Tls>, timeout: Duration) -> Connector {
        Connector {
            host,
            port,
            tls,
            timeout,
        }
    }

    /// A new connection, ready for a request, within the connect timeout.
    async fn connect(&self) -> Result<Sender, ConnectError> {
        let connecting = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(ConnectError::Tcp)?;
            tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
            match &self.tls {
                None => handshake(tcp).await,
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.server_name.clone(), tcp)
                        .await
                        .map_err(ConnectError::Tls)?;
                    handshake(stream).await
                }
            }
        };
        tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| ConnectError::TimedOut(self.timeout))?
    }
}

/// Starts HTTP/1.1 on `io`; the connection runs on its own task until the server closes it or
/// the returned sender is dropped. Its errors also reach the request in flight, which reports them.
async fn handshake<S>(io: S) -> Result<Sender, ConnectError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Http)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Connections to the API host, reused across calls.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    connector: Connector,
    /// Oldest at the bottom.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    pub(super) fn new(connector: Connector) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                connector,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `request` on an idle connection, or on a new one. Returns the connection with the
    /// response: give it back with [`Pool::put_back`] once the body has been read to its end.
    pub(super) async fn send(
        &self,
        mut request: Request<Empty<Bytes>>,
    ) -> Result<(Response<Incoming>, Sender), SendError> {
        if let Some(mut sender) = self.take_idle().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                // The server closed the idle connection before the request went out: nothing was
                // sent, so it goes once more on a new connection.
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Http(error.into_error())),
                },
            }
        }
        let mut sender = self
            .inner
            .connector
            .connect()
            .await
            .map_err(SendError::Connect)?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, sender)),
            Err(error) => Err(SendError::Http(error)),
        }
    }

    /// Keeps a connection whose last response was read whole, for the next call.
    pub(super) fn put_back(&self, sender: Sender) {
        let idle = Idle {
            sender,
            since: Instant::now(),
        };
        self.lock_idle().push(idle);
    }

    /// The newest idle connection that is still open and ready, if any.
    async fn take_idle(&self) -> Option<Sender> {
        loop {
            let mut sender = self.pop_idle()?;
            // Ready at once unless the connection task has not yet seen the end of the last
            // answer; an error means the connection is gone.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn pop_idle(&self) -> Option<Sender> {
        let mut idle = self.lock_idle();
        let now = Instant::now();
        while let Some(top) = idle.pop() {
            if now.duration_since(top.since) > IDLE_TIMEOUT {
                // Every connection below is older still: drop them all, which closes them.
                idle.clear();
                return None;
            }
            if !top.sender.is_closed() {
                return Some(top.sender);
            }
        }
        None
    }

    /// The idle stack; a panic while it was held cannot leave it half-changed.
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.lock_idle().len()
    }
}
