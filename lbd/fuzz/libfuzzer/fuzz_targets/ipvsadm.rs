#![no_main]
//! Any bytes as text: the checks of `lbd::import::fuzz::ipvsadm` (no panic; see there).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lbd::import::fuzz::ipvsadm(&String::from_utf8_lossy(data));
});
