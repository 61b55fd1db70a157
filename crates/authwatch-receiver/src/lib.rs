authwatch_core::components!(Receiver: otlp);
