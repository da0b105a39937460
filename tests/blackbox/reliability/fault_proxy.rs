//! A fault-injecting HTTP proxy in front of Kannel's sendsms: in each mode it forwards requests
//! (`Pass`), refuses connections (`Refuse`: nothing listens on its port), answers 500 without
//! asking Kannel (`Error500`), or accepts a request and never answers (`Hang`). Every other hung
//! request is still forwarded to Kannel first, so that the hang comes after Kannel took the
//! message (as when an answer is lost), and the rest never reach it: both are in doubt for us.
//! It records each request it read (the mode it met, the number, whether Kannel got it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Refuse,
    Error500,
    Hang,
}

/// One request the proxy read: the mode it met, the `to` number, whether Kannel got it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub fault: Fault,
    pub to: String,
    pub forwarded: bool,
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Option<Fault>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct FaultProxy {
    pub port: u16,
    /// Kannel's `http://host:port`.
    upstream: String,
    shared: Arc<Shared>,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    /// In `Pass` mode, in front of the sendsms URL `upstream_url`.
    pub async fn start(upstream_url: &str) -> FaultProxy {
        let url = reqwest::Url::parse(upstream_url).unwrap();
        let upstream = format!("http://{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = FaultProxy { port, upstream, shared: Arc::default(), accepting: None };
        *proxy.shared.mode.lock().unwrap() = Some(Fault::Pass);
        proxy.accept_on(listener);
        proxy
    }

    /// The sendsms URL through the proxy.
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.port)
    }

    /// Switch to `fault`: `Refuse` closes the listening socket, leaving it listens again.
    pub async fn set(&mut self, fault: Fault) {
        *self.shared.mode.lock().unwrap() = Some(fault);
        match (fault, self.accepting.take()) {
            (Fault::Refuse, Some(task)) => {
                task.abort();
                let _ = task.await;
            }
            (Fault::Refuse, None) => {}
            (_, Some(task)) => self.accepting = Some(task),
            (_, None) => {
                let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
                self.accept_on(listener);
            }
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let (shared, upstream) = (self.shared.clone(), self.upstream.clone());
        self.accepting = Some(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket, shared.clone(), upstream.clone(), http.clone()));
            }
        }));
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

async fn handle(mut socket: TcpStream, shared: Arc<Shared>, upstream: String, http: reqwest::Client) {
    // sendsms is a GET: the request is its head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
    let to = reqwest::Url::parse(&format!("{upstream}{target}"))
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "to").map(|(_, v)| v.into_owned()))
        .unwrap_or_default();
    // A connection accepted just before the listener closed meets `Refuse`: answered as a 500
    // (Kannel does not get it either way).
    let fault = match shared.mode.lock().unwrap().unwrap() {
        Fault::Refuse => Fault::Error500,
        other => other,
    };
    let forwarded = {
        let mut seen = shared.seen.lock().unwrap();
        let hung_before = seen.iter().filter(|s| s.fault == Fault::Hang).count();
        let forwarded = fault == Fault::Pass || (fault == Fault::Hang && hung_before % 2 == 0);
        seen.push(Seen { fault, to, forwarded });
        forwarded
    };
    let answer = if forwarded {
        match http.get(format!("{upstream}{target}")).timeout(Duration::from_secs(30)).send().await {
            Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
            Err(_) => Some((502, String::new())),
        }
    } else {
        None
    };
    let (status, body) = match (fault, answer) {
        (Fault::Hang, _) => {
            // Never answer: hold the connection until our client gives up and closes it.
            let _ = tokio::time::timeout(Duration::from_secs(300), async {
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            return;
        }
        (Fault::Pass, Some(answer)) => answer,
        _ => (500, "internal error".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}
