//! Placeholder for the `statuspage` receiver; replaced by its implementation.

use authwatch_core::{BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Running, Signals};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl ComponentConfig for Config {
    const TYPE: &'static str = "statuspage";
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::NONE
    }
    async fn build(&self, _cx: ReceiverContext) -> Result<Running, BuildError> {
        Err(BuildError::Other("not implemented yet".into()))
    }
}
