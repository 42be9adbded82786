//! The event exchange: services publish after their mutation commits; subscribers get every
//! envelope that matches their filters, across namespaces (clients filter by `namespace==`).

use prost_types::Timestamp;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::filters::{Adaptor, Filter};
use crate::identifiers;

#[derive(Clone, Debug)]
pub struct Envelope {
    pub timestamp: Timestamp,
    pub namespace: String,
    pub topic: String,
    pub event: prost_types::Any,
}

impl Adaptor for Envelope {
    fn field(&self, path: &[String]) -> Option<String> {
        match path {
            [f] if f == "namespace" => Some(self.namespace.clone()),
            [f] if f == "topic" => Some(self.topic.clone()),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Exchange {
    tx: broadcast::Sender<Envelope>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

/// Topics are `/`-separated identifiers, as containerd checks them.
pub fn validate_topic(topic: &str) -> Result<()> {
    let Some(rest) = topic.strip_prefix('/') else {
        return Err(Error::invalid(format!(
            "topic {topic:?}: must start with '/'"
        )));
    };
    for part in rest.split('/') {
        identifiers::validate(part).map_err(|e| e.context(format!("topic {topic:?}")))?;
    }
    Ok(())
}

pub fn now_timestamp() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

impl Exchange {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Exchange { tx }
    }

    /// Publishes a daemon event; the payload is packed with its bare type name.
    pub fn publish<M: prost::Name>(&self, ns: &str, topic: &str, event: &M) {
        self.forward(Envelope {
            timestamp: now_timestamp(),
            namespace: ns.to_string(),
            topic: topic.to_string(),
            event: berth_api::any::to_any(event),
        });
    }

    /// Publishes an envelope as it is (Forward, and Publish after validation).
    pub fn forward(&self, env: Envelope) {
        // No subscriber is not an error.
        let _ = self.tx.send(env);
    }

    pub fn validate(env: &Envelope) -> Result<()> {
        identifiers::validate(&env.namespace).map_err(|e| e.context("envelope namespace"))?;
        validate_topic(&env.topic)
    }

    pub fn subscribe(&self, filter: Filter) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            filter,
        }
    }
}

pub struct Subscription {
    rx: broadcast::Receiver<Envelope>,
    filter: Filter,
}

impl Subscription {
    /// The next matching envelope; `None` when the exchange is gone. A subscriber that falls more
    /// than the channel's capacity behind loses the oldest events and is told so in the log.
    pub async fn next(&mut self) -> Option<Envelope> {
        loop {
            match self.rx.recv().await {
                Ok(env) if self.filter.matches(&env) => return Some(env),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("event subscriber lagged, {n} events dropped")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
