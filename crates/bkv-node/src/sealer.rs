//! The node's view of its HSM as a `bkv_core::Sealer`: the partition, with every seal and
//! unseal timed and counted for the metrics (`bkv_hsm_op_duration_seconds`,
//! `bkv_hsm_errors`).

use std::future::Future;
use std::time::Instant;

use bkv_core::{SealError, SealPurpose, Sealer};
use bkv_hsm::Partition;
use zeroize::Zeroizing;

use crate::metrics::Metrics;

/// A partition whose sealing operations are measured.
#[derive(Debug, Clone)]
pub struct MeteredSealer {
    hsm: Partition,
    metrics: Metrics,
}

impl MeteredSealer {
    /// Wraps a partition.
    pub fn new(hsm: Partition, metrics: Metrics) -> Self {
        Self { hsm, metrics }
    }

    /// The partition.
    pub fn hsm(&self) -> &Partition {
        &self.hsm
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Sealer for MeteredSealer {
    fn seal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, SealError>> + Send {
        async move {
            let started = Instant::now();
            let result = self.hsm.seal(purpose, aad, plaintext).await;
            self.metrics
                .hsm_op("seal", started.elapsed(), result.as_ref().err());
            result
        }
    }

    fn unseal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, SealError>> + Send {
        async move {
            let started = Instant::now();
            let result = self.hsm.unseal(purpose, aad, blob).await;
            self.metrics
                .hsm_op("unseal", started.elapsed(), result.as_ref().err());
            result
        }
    }
}
