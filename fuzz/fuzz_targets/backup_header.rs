//! Fuzz target `backup_header`: see `bkv_fuzz::backup::backup_header` (fuzz/checks/backup.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::backup::backup_header(data));
