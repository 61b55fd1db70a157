//! Admission before the body is read: refused while the pipeline is backed up, or while
//! `max_requests_in_flight` requests are being read and handed on.

use std::sync::Mutex;

use authwatch_core::Backlog;

use super::*;

/// Reports the backlog it is told, and holds every request until released (counting those
/// that came in), then hands it to the sink.
struct Pipeline {
    sink: Sink,
    backlog: Mutex<Backlog>,
    entered: AtomicUsize,
    arrived: Notify,
    release: Notify,
    held: std::sync::atomic::AtomicBool,
}

impl Pipeline {
    fn new(backlog: Backlog, held: bool) -> Arc<Self> {
        Arc::new(Pipeline {
            sink: Sink::new(),
            backlog: Mutex::new(backlog),
            entered: AtomicUsize::new(0),
            arrived: Notify::new(),
            release: Notify::new(),
            held: std::sync::atomic::AtomicBool::new(held),
        })
    }

    fn set(&self, backlog: Backlog) {
        *self.backlog.lock().unwrap() = backlog;
    }

    async fn wait_entered(&self, n: usize) {
        tokio::time::timeout(HANG_GUARD, async {
            while self.entered.load(Ordering::SeqCst) < n {
                let arrived = self.arrived.notified();
                if self.entered.load(Ordering::SeqCst) >= n {
                    break;
                }
                arrived.await;
            }
        })
        .await
        .expect("requests reach the pipeline");
    }

    fn open(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

impl Consumer for Pipeline {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let released = self.release.notified();
            self.entered.fetch_add(1, Ordering::SeqCst);
            self.arrived.notify_waiters();
            if self.held.load(Ordering::SeqCst) {
                released.await;
            }
            self.sink.consume(data).await
        })
    }

    fn backlog(&self) -> Backlog {
        *self.backlog.lock().unwrap()
    }
}

async fn start(pipeline: &Arc<Pipeline>, in_flight: usize) -> (Settings, SocketAddr, SocketAddr) {
    let settings = Settings::new(otlp_id());
    let cx = ReceiverContext {
        settings: settings.clone(),
        next: router_to(pipeline.clone(), &SignalKind::ALL),
    };
    let mut config = loopback();
    if let Some(g) = config.protocols.grpc.as_mut() {
        g.max_requests_in_flight = Some(Positive(in_flight));
    }
    if let Some(h) = config.protocols.http.as_mut() {
        h.max_requests_in_flight = Some(Positive(in_flight));
    }
    let receiver = Receiver::bind(&config, cx).await.unwrap();
    let (grpc, http) = (receiver.grpc_addr().unwrap(), receiver.http_addr().unwrap());
    tokio::spawn(receiver.run());
    (settings, grpc, http)
}

fn refused_requests(settings: &Settings) -> u64 {
    settings
        .telemetry
        .encode()
        .lines()
        .filter(|l| l.starts_with("authwatch_receiver_refused_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_backed_up_pipeline_is_refused_before_the_body_is_read() {
    let pipeline = Pipeline::new(Backlog::Full, false);
    let (settings, grpc, http) = start(&pipeline, 8).await;

    let mut t = TraceServiceClient::connect(format!("http://{grpc}")).await.unwrap();
    let err = t.export(traces(0, 5)).await.unwrap_err();
    assert_status(&err, Code::Unavailable);
    let r = post(http, "/v1/traces", &[PB], &traces(0, 5).encode_to_vec()).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(pipeline.entered.load(Ordering::SeqCst), 0);
    assert_eq!(refused_requests(&settings), 2, "both counted as refused before the body");

    // Once the backlog clears, the same requests go in.
    pipeline.set(Backlog::Clear);
    t.export(traces(0, 5)).await.unwrap();
    let r = post(http, "/v1/traces", &[PB], &traces(5, 5).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(pipeline.sink.item_count(SignalKind::Traces), 10);
    settings.shutdown.cancel();
}

#[tokio::test]
async fn requests_past_max_in_flight_are_refused_before_the_body_is_read() {
    const LIMIT: usize = 3;
    let pipeline = Pipeline::new(Backlog::Clear, true);
    let (settings, grpc, http) = start(&pipeline, LIMIT).await;
    let client = TraceServiceClient::connect(format!("http://{grpc}")).await.unwrap();

    // LIMIT calls are admitted and wait in the pipeline...
    let mut calls = Vec::new();
    for i in 0..LIMIT as u64 {
        let mut c = client.clone();
        calls.push(tokio::spawn(async move { c.export(traces(i * 2, 2)).await }));
    }
    pipeline.wait_entered(LIMIT).await;
    // ...and one more is refused at once; the HTTP transport has a limit of its own.
    let err = client.clone().export(traces(100, 2)).await.unwrap_err();
    assert_status(&err, Code::Unavailable);
    assert_eq!(pipeline.entered.load(Ordering::SeqCst), LIMIT);
    assert_eq!(refused_requests(&settings), 1);
    let over_http = tokio::spawn(async move {
        post(http, "/v1/traces", &[PB], &traces(200, 2).encode_to_vec()).await
    });
    pipeline.wait_entered(LIMIT + 1).await;

    // Once they are answered, calls are admitted again.
    pipeline.open();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(over_http.await.unwrap().status, 200);
    client.clone().export(traces(300, 2)).await.unwrap();
    assert_eq!(
        pipeline.sink.item_count(SignalKind::Traces),
        2 * (LIMIT + 2),
        "every admitted request delivered"
    );
    settings.shutdown.cancel();
}
