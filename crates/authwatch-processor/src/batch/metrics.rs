//! The `batch` processor's own metrics: items per sent request and what triggered each send.

use authwatch_core::telemetry::{batch_send_size_histogram, Counter, Family, Histogram};
use authwatch_core::ComponentId;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct BatchLabels {
    processor: String,
    pipeline: String,
}
authwatch_core::label_set!(BatchLabels { processor, pipeline });

type HistogramFamily = Family<BatchLabels, Histogram, fn() -> Histogram>;

/// One instance's handles on the batch metrics.
#[derive(Clone, Debug)]
pub(super) struct BatchMetrics {
    pub(super) send_size: Histogram,
    pub(super) size_trigger: Counter,
    pub(super) timeout_trigger: Counter,
}

impl BatchMetrics {
    pub(super) fn new(
        telemetry: &authwatch_core::telemetry::Telemetry,
        id: &ComponentId,
        pipeline: &str,
    ) -> Self {
        // Every batch instance shares these families (labelled by processor and pipeline).
        let send_size: HistogramFamily = telemetry.metric(
            "processor_batch_send_size",
            "Items per request sent by a batch processor",
            || Family::new_with_constructor(batch_send_size_histogram as fn() -> Histogram),
        );
        let size_trigger: Family<BatchLabels, Counter> = telemetry.metric(
            "processor_batch_size_trigger_send",
            "Requests a batch processor sent because the batch reached send_batch_size",
            Family::default,
        );
        let timeout_trigger: Family<BatchLabels, Counter> = telemetry.metric(
            "processor_batch_timeout_trigger_send",
            "Requests a batch processor sent because the timeout elapsed or it was stopping",
            Family::default,
        );
        let l = BatchLabels {
            processor: id.to_string(),
            pipeline: pipeline.to_owned(),
        };
        let send_size = send_size.get_or_create(&l).clone();
        let size_trigger = size_trigger.get_or_create(&l).clone();
        let timeout_trigger = timeout_trigger.get_or_create(&l).clone();
        BatchMetrics {
            send_size,
            size_trigger,
            timeout_trigger,
        }
    }
}

