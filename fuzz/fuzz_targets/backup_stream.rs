//! Fuzz target `backup_stream`: see `bkv_fuzz::backup::backup_stream` (fuzz/checks/backup.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::backup::backup_stream(data));
