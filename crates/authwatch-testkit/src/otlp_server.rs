//! A real OTLP server on loopback (gRPC and HTTP) that records what it receives. Filled in by
//! the exporter work.
