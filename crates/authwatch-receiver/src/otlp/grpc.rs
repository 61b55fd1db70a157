//! OTLP/gRPC: the `TraceService`, `MetricsService` and `LogsService` `Export` methods, served by
//! one generic service that takes the request as bytes, all feeding the same [`Ingest`].

use std::future::Future;

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::{ConsumeError, RunError};
use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, EnabledCompressionEncodings,
    Encoder,
};
use tonic::server::{NamedService, UnaryService};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

use super::auth::BearerAuth;
use super::grpc_frame::{self, RequestEncoding};
use super::ingest::{Decoded, Export, Ingest};
use super::status::Problem;
use super::{grpc_limits, GrpcConfig};

// === impl ExportServer ===

/// One OTLP gRPC service (`TraceService`, `MetricsService` or `LogsService`) whose `Export`
/// takes the request message as bytes: [`grpc_frame::read_admitted`] unframes and inflates it
/// (each fault a typed error, answered per `status.rs`), then [`Ingest::read_protobuf`] checks or
/// decodes it, so a request the pipelines want as bytes is never decoded, and an undecodable one
/// gets INVALID_ARGUMENT with the reason.
pub(crate) struct ExportServer<R> {
    ingest: Ingest,
    max_decoding_message_size: usize,
    _request: PhantomData<fn(R)>,
}

impl<R> Clone for ExportServer<R> {
    fn clone(&self) -> Self {
        ExportServer {
            ingest: self.ingest.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
            _request: PhantomData,
        }
    }
}

impl<R: Export> ExportServer<R> {
    pub(crate) fn new(ingest: Ingest, max_decoding_message_size: usize) -> Self {
        ExportServer {
            ingest,
            max_decoding_message_size,
            _request: PhantomData,
        }
    }
}

impl<R: Export> NamedService for ExportServer<R> {
    const NAME: &'static str = R::SERVICE;
}

impl<R: Export, B> tower::Service<http::Request<B>> for ExportServer<R>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != R::PATH {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(Status::GRPC_STATUS, (Code::Unimplemented as i32).into());
                headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
                Ok(response)
            });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let limit = this.max_decoding_message_size;
            let mut grpc = tonic::server::Grpc::new(BytesCodec::<R::Response>::default())
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(limit), None);
            let Some(encoding) = RequestEncoding::from_headers(req.headers()) else {
                // An encoding the receiver does not take: tonic answers UNIMPLEMENTED (the gRPC
                // spec) with the encodings it does take, before reading the body.
                return Ok(grpc.unary(this, req).await);
            };
            // Admission before the message is read: a refusal costs no read and no decode.
            // HTTP/2 requests rarely declare a length; then what is held now decides.
            let declared = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let admitted = match this.ingest.admit(R::KIND, declared) {
                Ok(admitted) => admitted,
                Err(e) => {
                    return Ok(Problem::from(&e)
                        .to_grpc()
                        .into_http::<tonic::body::Body>())
                }
            };
            let mut held = this.ingest.charge(declared);
            let (mut parts, body) = req.into_parts();
            // Asked again with the length the frame header declares, before the message is read.
            let ingest = this.ingest.clone();
            let admit = |len: u64| {
                let more = len.saturating_sub(held.bytes());
                ingest.admit_more(more)?;
                held.add(more);
                Ok(())
            };
            let message = match grpc_frame::read_admitted(body, encoding, limit, admit).await {
                Ok(message) => message,
                Err(e) => return Ok(Status::from(&e).into_http::<tonic::body::Body>()),
            };
            // Held until the pipelines have it: the message as it will be handed on.
            held.add((message.len() as u64).saturating_sub(held.bytes()));
            // The message is read and inflated now. tonic still answers the call (status,
            // trailers, response framing), but its decoder gets an empty frame and the message
            // rides in the request's extensions: the body is not copied a second time.
            parts.headers.remove("grpc-encoding");
            parts.extensions.insert(ReadMessage(message));
            let req = http::Request::from_parts(
                parts,
                Full::new(Bytes::from_static(grpc_frame::EMPTY_FRAME)),
            );
            let answer = grpc.unary(this, req).await;
            drop(held);
            ingest.answered(admitted);
            Ok(answer)
        })
    }
}

impl<R: Export> UnaryService<Bytes> for ExportServer<R> {
    type Response = R::Response;
    type Future = BoxFuture<'static, Result<Response<R::Response>, Status>>;

    fn call(&mut self, mut request: Request<Bytes>) -> Self::Future {
        let ingest = self.ingest.clone();
        Box::pin(async move {
            let problem = |e: ConsumeError| Problem::from(&e).to_grpc();
            let message = match request.extensions_mut().remove::<ReadMessage>() {
                Some(ReadMessage(message)) => message,
                None => request.into_inner(),
            };
            match ingest.read_protobuf::<R>(message) {
                Err(e) => Err(Status::invalid_argument(format!(
                    "cannot decode the message as protobuf {}: {e}",
                    R::NAME
                ))),
                Ok(Decoded::Encoded(data)) => {
                    ingest.export_encoded(data).await.map_err(problem)?;
                    Ok(Response::new(R::response(None)))
                }
                Ok(Decoded::Decoded(req)) => {
                    let rejected = ingest.export(req).await.map_err(problem)?;
                    Ok(Response::new(R::response(rejected)))
                }
            }
        })
    }
}

/// The request message as [`grpc_frame::read_admitted`] read it, handed to the service past
/// tonic's decoder.
#[derive(Clone)]
struct ReadMessage(Bytes);

/// The request message as it arrived (after tonic's framing and gzip); a prost response.
struct BytesCodec<Resp>(PhantomData<fn(Resp)>);

impl<Resp> Default for BytesCodec<Resp> {
    fn default() -> Self {
        BytesCodec(PhantomData)
    }
}

impl<Resp: prost::Message + Send + 'static> Codec for BytesCodec<Resp> {
    type Encode = Resp;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

struct ResponseEncoder<Resp>(PhantomData<fn(Resp)>);

impl<Resp: prost::Message> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// Refuses calls without the configured bearer token (`authorization` metadata) before their
/// message is decoded; passes every call when no token is configured.
fn authenticate(
    auth: Option<BearerAuth>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |request: Request<()>| match &auth {
        None => Ok(request),
        Some(a) => {
            let value = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes());
            if a.check(value) {
                Ok(request)
            } else {
                Err(Status::unauthenticated(
                    "missing or wrong bearer token: send `authorization: Bearer <token>` metadata",
                ))
            }
        }
    }
}

/// Serves the three services on `listener` until `shutdown` is cancelled, then lets the requests
/// in flight finish. tonic checks `max_recv_msg_size_mib` on the wire and while inflating gzip.
/// With `tls`, connections are TLS (handshakes off the accept loop; see [`authwatch_net::tls`]).
pub(crate) fn serve(
    config: GrpcConfig,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<BearerAuth>,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), RunError>> + Send + 'static {
    let check = authenticate(auth);
    let limit = config.max_recv_msg_size();
    let traces = ExportServer::<ExportTraceServiceRequest>::new(ingest.clone(), limit);
    let metrics = ExportServer::<ExportMetricsServiceRequest>::new(ingest.clone(), limit);
    let logs = ExportServer::<ExportLogsServiceRequest>::new(ingest, limit);
    let router = grpc_limits::server_builder(&config)
        .add_service(InterceptedService::new(traces, check.clone()))
        .add_service(InterceptedService::new(metrics, check.clone()))
        .add_service(InterceptedService::new(logs, check));
    async move {
        let served = match tls {
            None => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                router
                    .serve_with_incoming_shutdown(
                        grpc_limits::limit(&config, incoming),
                        shutdown.cancelled_owned(),
                    )
                    .await
            }
            Some(tls) => {
                let incoming =
                    authwatch_net::tls::TlsIncoming::new(listener, tls, shutdown.clone());
                router
                    .serve_with_incoming_shutdown(
                        grpc_limits::limit(&config, incoming),
                        shutdown.cancelled_owned(),
                    )
                    .await
            }
        };
        served.map_err(|e| RunError::Serve {
            server: "OTLP gRPC server",
            source: Box::new(e),
        })
    }
}
