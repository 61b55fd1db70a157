//! A steady OTLP/gRPC load with every acknowledged span tracked, for the delivery tests
//! (fault, crash): what was acknowledged must arrive.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_testkit::otlp_server::OtlpServer;

/// Spans per client request.
pub const PER_REQUEST: u64 = 10;
/// One request per this interval (500 spans/s).
pub const EVERY: Duration = Duration::from_millis(20);
/// Hard cap on requests, whatever happens to the timing.
pub const MAX_REQUESTS: u64 = 20_000;

/// `test.index` of every span the backend accepted, with how often it arrived.
pub fn arrived(backend: &OtlpServer) -> HashMap<i64, usize> {
    let mut seen = HashMap::new();
    for req in backend.traces() {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let idx = s
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "test.index")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            authwatch_core::otlp::common::v1::any_value::Value::IntValue(i) => {
                                Some(*i)
                            }
                            _ => None,
                        });
                    *seen.entry(idx.expect("test.index")).or_insert(0) += 1;
                }
            }
        }
    }
    seen
}

/// Waits (hang guard `timeout`) until every acknowledged index arrived; returns the arrivals.
pub async fn wait_for_all(
    backend: &OtlpServer,
    acked: &[i64],
    timeout: Duration,
) -> HashMap<i64, usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = arrived(backend);
        if acked.iter().all(|i| got.contains_key(i)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A client sending one request every [`EVERY`] until stopped; refused requests are counted and
/// not retried (their spans are simply not acknowledged).
pub struct Load {
    acked: Arc<Mutex<Vec<i64>>>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(grpc: u16) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, r, s) = (acked.clone(), refused.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let url = format!("http://127.0.0.1:{grpc}");
            let mut client = None;
            let mut tick = tokio::time::interval(EVERY);
            for k in 0..MAX_REQUESTS {
                tick.tick().await;
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if client.is_none() {
                    client = TraceServiceClient::connect(url.clone()).await.ok();
                }
                let Some(c) = client.as_mut() else {
                    r.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let first = k * PER_REQUEST;
                let req = authwatch_testkit::traces(first, PER_REQUEST);
                match tokio::time::timeout(Duration::from_secs(10), c.export(req)).await {
                    Ok(Ok(_)) => a
                        .lock()
                        .unwrap()
                        .extend((first..first + PER_REQUEST).map(|i| i as i64)),
                    Ok(Err(st)) => {
                        r.fetch_add(1, Ordering::Relaxed);
                        if !matches!(
                            st.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ) {
                            // Transport trouble (authwatch restarting): connect again.
                            client = None;
                        }
                    }
                    Err(_) => {
                        r.fetch_add(1, Ordering::Relaxed);
                        client = None;
                    }
                }
            }
        });
        Load {
            acked,
            refused,
            stop,
            task,
        }
    }

    pub async fn finish(self) -> (Vec<i64>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("load stops")
            .unwrap();
        let acked = self.acked.lock().unwrap().clone();
        (acked, self.refused.load(Ordering::Relaxed))
    }

    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}
