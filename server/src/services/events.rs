use std::sync::Arc;

use api::events_server::Events;
use berth_api::containerd::services::events::v1 as api;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{filter, namespace, BoxStream};
use crate::events::{now_timestamp, validate_topic, Envelope, Exchange};
use crate::Meta;

pub struct EventsService(pub Arc<Meta>);

fn envelope_to_api(e: Envelope) -> berth_api::containerd::types::Envelope {
    berth_api::containerd::types::Envelope {
        timestamp: Some(e.timestamp),
        namespace: e.namespace,
        topic: e.topic,
        event: Some(e.event),
    }
}

#[tonic::async_trait]
impl Events for EventsService {
    async fn publish(&self, r: Request<api::PublishRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&r)?;
        let r = r.into_inner();
        validate_topic(&r.topic)?;
        let event = r
            .event
            .ok_or_else(|| Status::invalid_argument("event must be set"))?;
        self.0.events.forward(Envelope {
            timestamp: now_timestamp(),
            namespace: ns,
            topic: r.topic,
            event,
        });
        Ok(Response::new(()))
    }

    async fn forward(&self, r: Request<api::ForwardRequest>) -> Result<Response<()>, Status> {
        let e = r
            .into_inner()
            .envelope
            .ok_or_else(|| Status::invalid_argument("envelope must be set"))?;
        let env = Envelope {
            timestamp: e.timestamp.unwrap_or_else(now_timestamp),
            namespace: e.namespace,
            topic: e.topic,
            event: e
                .event
                .ok_or_else(|| Status::invalid_argument("event must be set"))?,
        };
        Exchange::validate(&env)?;
        self.0.events.forward(env);
        Ok(Response::new(()))
    }

    type SubscribeStream = BoxStream<berth_api::containerd::types::Envelope>;

    /// Subscriptions are global: the filters (e.g. `namespace==moby`) choose what to receive.
    async fn subscribe(
        &self,
        r: Request<api::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let f = filter(&r.into_inner().filters)?;
        let mut sub = self.0.events.subscribe(f);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(env) = sub.next().await {
                if tx.send(Ok(envelope_to_api(env))).await.is_err() {
                    break; // the subscriber went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
