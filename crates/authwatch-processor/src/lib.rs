authwatch_core::components!(Processor: batch, memory_limiter; Connector: forward, error_rate, alerts);
