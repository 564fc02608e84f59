//! Integration tests of `bkv-hsm` against real SoftHSM2 tokens, made fresh in a temp dir by
//! `bkv_hsm::testing`. One test binary (one process, one SoftHSM configuration) with a
//! module per topic.

mod canary;
mod ceremony;
mod concurrency;
mod data;
mod open;
mod seal;
mod shares;
