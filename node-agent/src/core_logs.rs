//! The core's output: a bounded buffer of recent lines plus a live feed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use nexpoint_proto::agent::LogLine;
use tokio::sync::broadcast;

pub const RECENT_LINES: usize = 500;
const LIVE_CAPACITY: usize = 1024;

#[derive(Clone)]
pub struct CoreLogs {
    recent: Arc<Mutex<VecDeque<LogLine>>>,
    live: broadcast::Sender<LogLine>,
}

impl Default for CoreLogs {
    fn default() -> Self {
        Self {
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_LINES))),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }
}

impl CoreLogs {
    pub fn push(&self, line: String) {
        let line = LogLine {
            timestamp_ms: now_ms(),
            line,
        };
        // Buffer and feed change under one lock, so a subscriber sees every
        // line exactly once: in its copy of the buffer or on the feed.
        let mut recent = self.recent.lock().expect("log buffer poisoned");
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line.clone());
        // No subscriber is fine.
        let _ = self.live.send(line);
    }

    /// The buffered lines and a feed of every line after them.
    pub fn subscribe_with_recent(&self) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let recent = self.recent.lock().expect("log buffer poisoned");
        let receiver = self.live.subscribe();
        (recent.iter().cloned().collect(), receiver)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.live.subscribe()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_feeds_subscribers() {
        let logs = CoreLogs::default();
        for i in 0..RECENT_LINES + 3 {
            logs.push(format!("line {i}"));
        }
        let (recent, mut live) = logs.subscribe_with_recent();
        assert_eq!(recent.len(), RECENT_LINES);
        assert_eq!(recent[0].line, "line 3");
        logs.push("new".into());
        assert_eq!(live.recv().await.unwrap().line, "new");
    }
}
