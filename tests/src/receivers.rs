//! Real HTTP receivers of notifications on 127.0.0.1:0: a webhook receiver
//! that can answer 500, answer slowly, or be down (connections dropped), and
//! a stand-in for the Telegram Bot API that validates each request the way
//! the real one does.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One webhook request as it arrived.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub secret: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
    pub items: Vec<Value>,
}

#[derive(Default)]
struct Behaviour {
    /// Answer with this status instead of 200 (0: 200).
    fail_with: AtomicU16,
    /// Wait this long before answering.
    delay_ms: AtomicU64,
    /// Drop every connection unanswered.
    down: AtomicBool,
    requests: Mutex<Vec<WebhookRequest>>,
}

/// A listener that drops connections while the receiver is down: to the
/// sender it looks like a host that resets connections.
struct Gate {
    listener: TcpListener,
    behaviour: Arc<Behaviour>,
}

impl axum::serve::Listener for Gate {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) if self.behaviour.down.load(Ordering::SeqCst) => drop(stream),
                Ok(accepted) => return accepted,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

pub struct WebhookReceiver {
    pub url: String,
    behaviour: Arc<Behaviour>,
    task: JoinHandle<()>,
}

async fn receive(
    State(b): State<Arc<Behaviour>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        _ => return StatusCode::BAD_REQUEST,
    };
    b.requests.lock().unwrap().push(WebhookRequest {
        secret: header("x-webhook-secret"),
        timestamp: header("x-nexpoint-timestamp"),
        signature: header("x-nexpoint-signature"),
        body,
        items,
    });
    let delay = b.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match b.fail_with.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        code => StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl WebhookReceiver {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let behaviour = Arc::new(Behaviour::default());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(behaviour.clone());
        let gate = Gate {
            listener,
            behaviour: behaviour.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(gate, app).await;
        });
        Ok(Self {
            url,
            behaviour,
            task,
        })
    }

    /// Answer `status` (500: failing) or, with 0, 200 again.
    pub fn fail_with(&self, status: u16) {
        self.behaviour.fail_with.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.behaviour
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.behaviour.down.store(down, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<WebhookRequest> {
        self.behaviour.requests.lock().unwrap().clone()
    }

    /// Every item received, in arrival order, duplicates included.
    pub fn items(&self) -> Vec<Value> {
        self.requests().into_iter().flat_map(|r| r.items).collect()
    }

    /// Items deduplicated by their `id` (the first arrival of each), in
    /// arrival order.
    pub fn unique_items(&self) -> Vec<Value> {
        let mut seen = std::collections::BTreeSet::new();
        self.items()
            .into_iter()
            .filter(|i| seen.insert(i["id"].as_i64().unwrap_or(-1)))
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A message the Telegram stand-in accepted.
#[derive(Debug, Clone)]
pub struct TelegramMessage {
    pub chat_id: i64,
    pub text: String,
}

struct BotState {
    token: String,
    chats: Vec<i64>,
    accepted: Mutex<Vec<TelegramMessage>>,
    rejected: Mutex<Vec<String>>,
    next_id: AtomicU64,
}

/// Stands in for `https://api.telegram.org`: `POST /bot<token>/<method>`.
pub struct TelegramStandIn {
    pub base_url: String,
    state: Arc<BotState>,
    task: JoinHandle<()>,
}

fn bot_error(
    state: &BotState,
    status: StatusCode,
    description: &str,
) -> (StatusCode, axum::Json<Value>) {
    state.rejected.lock().unwrap().push(description.to_owned());
    (
        status,
        axum::Json(json!({"ok": false, "error_code": status.as_u16(), "description": description})),
    )
}

/// Whether `text` is valid for parse_mode HTML: only the tags Telegram
/// supports, and `<`, `>`, `&` escaped everywhere else.
fn valid_telegram_html(text: &str) -> Result<(), String> {
    const TAGS: [&str; 9] = ["b", "strong", "i", "em", "u", "s", "code", "pre", "a"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['<', '>', '&']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        match c {
            b'>' => return Err("Bad Request: unescaped '>'".into()),
            b'&' => {
                let end = after.find(';').ok_or("Bad Request: unterminated entity")?;
                if !["lt", "gt", "amp", "quot"].contains(&&after[..end]) {
                    return Err(format!(
                        "Bad Request: unsupported entity &{};",
                        &after[..end]
                    ));
                }
                rest = &after[end + 1..];
            }
            _ => {
                let end = after.find('>').ok_or("Bad Request: unclosed tag")?;
                let tag = &after[..end];
                if let Some(name) = tag.strip_prefix('/') {
                    if open.pop().as_deref() != Some(name) {
                        return Err(format!("Bad Request: unexpected end tag {name}"));
                    }
                } else {
                    let name = tag.split_whitespace().next().unwrap_or("");
                    if !TAGS.contains(&name) {
                        return Err(format!("Bad Request: unsupported start tag \"{name}\""));
                    }
                    open.push(name.to_owned());
                }
                rest = &after[end + 1..];
            }
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err("Bad Request: unclosed tags".into())
    }
}

async fn bot_method(
    State(state): State<Arc<BotState>>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let Some(token) = bot.strip_prefix("bot") else {
        return bot_error(&state, StatusCode::NOT_FOUND, "Not Found");
    };
    if token != state.token {
        return bot_error(&state, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if method != "sendMessage" {
        return bot_error(&state, StatusCode::NOT_FOUND, "Not Found: method not found");
    }
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(request) = serde_json::from_slice::<Value>(&body)
        .map_err(|_| ())
        .and_then(|v| if json_body { Ok(v) } else { Err(()) })
    else {
        return bot_error(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad Request: expected a JSON body",
        );
    };
    let Some(chat_id) = request["chat_id"].as_i64() else {
        return bot_error(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad Request: chat_id is empty",
        );
    };
    if !state.chats.contains(&chat_id) {
        return bot_error(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad Request: chat not found",
        );
    }
    let text = request["text"].as_str().unwrap_or("");
    if text.trim().is_empty() {
        return bot_error(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad Request: message text is empty",
        );
    }
    if text.chars().count() > 4096 {
        return bot_error(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad Request: message is too long",
        );
    }
    match request["parse_mode"].as_str() {
        None => {}
        Some("HTML") => {
            if let Err(e) = valid_telegram_html(text) {
                return bot_error(&state, StatusCode::BAD_REQUEST, &e);
            }
        }
        Some(other) => {
            return bot_error(
                &state,
                StatusCode::BAD_REQUEST,
                &format!("Bad Request: unsupported parse_mode {other}"),
            );
        }
    }
    state.accepted.lock().unwrap().push(TelegramMessage {
        chat_id,
        text: text.to_owned(),
    });
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": {"message_id": id, "chat": {"id": chat_id}}})),
    )
}

impl TelegramStandIn {
    /// Accepts `token` and messages to `chats` only.
    pub async fn start(token: &str, chats: &[i64]) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(BotState {
            token: token.to_owned(),
            chats: chats.to_vec(),
            accepted: Mutex::default(),
            rejected: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(bot_method))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url,
            state,
            task,
        })
    }

    pub fn messages(&self) -> Vec<TelegramMessage> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Why requests were refused, if any were.
    pub fn rejections(&self) -> Vec<String> {
        self.state.rejected.lock().unwrap().clone()
    }
}

impl Drop for TelegramStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::valid_telegram_html;

    #[test]
    fn html_is_checked_like_the_bot_api() {
        assert!(valid_telegram_html("<b>x</b>\nA: <code>&lt;b&gt; &amp;</code>").is_ok());
        assert!(valid_telegram_html("<b>x").is_err());
        assert!(valid_telegram_html("<div>x</div>").is_err());
        assert!(valid_telegram_html("a < b").is_err());
        assert!(valid_telegram_html("a & b").is_err());
    }
}
